/*
 * worker.h - the worker process (`graft worker`, `graftd worker`): reads
 * tasks of the worker protocol (proto.h) on stdin, evaluates them, and
 * answers on stdout.
 */
#ifndef GRAFT_WORKER_H
#define GRAFT_WORKER_H

/* The worker's main loop; returns the process exit code. */
int worker_main(int argc, char **argv);

#endif
