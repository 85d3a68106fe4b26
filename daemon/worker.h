/*
 * worker.h - the worker process: evaluates candidates it is sent as JSON
 * lines on stdin and answers with JSON lines on stdout.  It lives for many
 * candidates, keeping the last dataset, graft and graft features loaded, so
 * a job's workers load them once.  The protocol (one JSON object per line):
 *
 *   in:  {"type":"task", "id":N, "data":{"dir"|"train_images","train_labels",
 *         "validation"}, "graft":{"path","sha256"}|null, "threads":T,
 *         "arch":"<graft-arch/1 YAML>", "parent":"weights"|null,
 *         "save":"weights"|null, "report_every":S}
 *   out: {"type":"ready", "pid":P}                        once, at the start
 *        {"type":"loading", "id":N, "what":"..."}         heartbeats while loading
 *        {"type":"progress", "id":N, "step":s, "steps":S, "loss":l}
 *        {"type":"result", "id":N, "val_accuracy", "val_loss", "train_loss",
 *         "steps", "wall_s", "cpu_s", "params", "flops", "inherited",
 *         "feature_cache", "images_per_s", "setup_cpu_s"}
 *        {"type":"error", "id":N, "message":"..."}        the candidate failed
 *
 * End of input ends the worker (exit 0).  A line that is not a task is
 * answered with an error of id -1, and the worker goes on.  Being plain stdio,
 * the same worker runs under a cluster launcher (srun ...) unchanged.
 */
#ifndef GRAFT_WORKER_H
#define GRAFT_WORKER_H

/* The worker's main loop; returns the process exit code. */
int worker_main(int argc, char **argv);

#endif
