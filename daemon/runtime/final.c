/*
 * final.c - a job's final stage: the best distinct architectures of the
 * search trained to the end with the job's final recipe, the winner picked
 * on validation, and only then the test split scored, once, for the winner
 * alone.  Nothing else in graft reads a job's test split.
 *
 * final.graft best trains the top architectures with the graft fine-tuned,
 * then the winner once more without the graft, and keeps the better on
 * validation: at full budget a frozen graft is neutral to slightly harmful
 * (DESIGN.md), and whether the network is better with the graft fine-tuned
 * or without it differs from network to network.
 *
 * Resuming.  Every training is a row of the store's finals table, written
 * before its task exists.  A training checkpoints as it goes (weights,
 * momentum and step in one file) and a task for a row whose checkpoint
 * exists goes on from it, so a kill -9 costs the steps since the last
 * checkpoint, not the training.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/runtime/jobrun_internal.h"

#define CHECKPOINTS 20        /* per training, at most */
#define MIN_CHECKPOINT_STEPS 50
#define REPORT_EVERY 25       /* progress lines are the worker's heartbeat */

static int job_has_graft(const rt_jobrun *jr)
{
	return jr->base.graft_nlayers > 0;
}

/* Whether the job's data has a test split: test_images named, or in its
 * directory the files nn_dataset_load_dir reads for one. */
static int job_has_test(const rt_jobrun *jr)
{
	static const char *const names[] = {
		"t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz", "test_batch.bin",
		"cifar-10-batches-bin/test_batch.bin",
	};
	const char *dir = jr->spec.dataset.dir;
	char path[PROTO_PATH_MAX + 64];

	if (!dir[0])
		return jr->spec.dataset.test_images[0] != '\0';
	if (jr->spec.dataset.prepared[0])
		return jr->in->folder.test > 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (rt__file_exists(path))
			return 1;
	}
	return 0;
}

static void file_of(const rt_jobrun *jr, const store_final *f, const char *ext, char *out,
                    size_t len)
{
	snprintf(out, len, "%s/final-%lld.%s", jr->weights_dir, (long long)f->id, ext);
}

/* What candidate seq is trained as in the final stage: its network, the
 * final recipe, and the graft as mode says. */
static int final_arch(rt_jobrun *jr, int seq, const char *mode, nn_arch *a, char *err,
                      size_t errlen)
{
	int rc = rt__genome_of(jr, seq, a, err, errlen);
	if (rc)
		return rc;
	a->train = jr->spec.final.train;
	a->train.seed = jr->spec.seed;
	if (a->train.crop)
		a->train.crop = rt__crop_padding(a->in_h, a->in_w);
	if (!strcmp(mode, "drop")) {
		a->graft_nlayers = 0;
		memset(a->graft_kernel, 0, sizeof(a->graft_kernel));
		memset(a->graft_channels, 0, sizeof(a->graft_channels));
		a->graft_sha256[0] = '\0';
		a->graft_source[0] = '\0';
	}
	a->graft_trainable = !strcmp(mode, "finetune");
	a->has_result = 0;
	return 0;
}

static int reload(rt_jobrun *jr, char *err, size_t errlen)
{
	store_finals_free(jr->finals, jr->nfinals);
	jr->finals = NULL;
	jr->nfinals = 0;
	int rc = store_finals(jr->st, jr->job_id, &jr->finals, &jr->nfinals);
	return rc ? rt__fail(err, errlen, rc, "reading the final stage: %s", store_errmsg(jr->st))
	          : 0;
}

int rt__final_open(rt_jobrun *jr, int final_phase, char *err, size_t errlen)
{
	int rc;

	jr->final_phase = final_phase;
	if (!final_phase || (rc = reload(jr, err, errlen)))
		return final_phase ? rc : 0;
	/* A training its process left running runs again, from its checkpoint. */
	for (int i = 0; i < jr->nfinals; i++)
		if (jr->finals[i].status == STORE_FINAL_RUNNING) {
			/* Not the training's fault: no attempt is spent. */
			jr->finals[i].status = STORE_FINAL_PENDING;
			jr->finals[i].attempts--;
			if ((rc = store_final_update(jr->st, &jr->finals[i])))
				return rt__fail(err, errlen, rc, "reopening the final stage: %s",
				                store_errmsg(jr->st));
		}
	return 0;
}

void rt__final_free(rt_jobrun *jr)
{
	store_finals_free(jr->finals, jr->nfinals);
	jr->finals = NULL;
	jr->nfinals = 0;
}

/* Adds a pending training of candidate id (its leaderboard rank) with the
 * graft as mode says; *dup is set instead when its architecture is one of
 * the n hashes in seen (two genomes that differ only in what the final
 * recipe replaces are one architecture). */
static int add_training(rt_jobrun *jr, int64_t id, int rank, const char *mode,
                        char (*seen)[65], int *n, char *err, size_t errlen)
{
	nn_arch a;
	char sha[65];
	int seq = rt__seq_of(jr, id), rc;

	if (seq < 0)
		return rt__fail(err, errlen, GRAFT_EFORMAT, "%s", "the leaderboard names a "
		                "candidate of another job: the store was changed");
	if ((rc = final_arch(jr, seq, mode, &a, err, errlen)))
		return rc;
	search_arch_hash(&a, sha);
	for (int i = 0; seen && i < *n; i++)
		if (!strcmp(seen[i], sha))
			return 0;
	store_final f = { .job_id = jr->job_id, .candidate_id = id, .rank = rank,
	                  .arch = proto_arch_emit(&a), .status = STORE_FINAL_PENDING,
	                  .steps = a.train.steps };
	snprintf(f.graft, sizeof(f.graft), "%s", mode);
	if (!f.arch)
		return rt__fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	rc = store_final_add(jr->st, &f);
	free(f.arch);
	if (rc)
		return rt__fail(err, errlen, rc, "recording a final training: %s",
		                store_errmsg(jr->st));
	if (seen)
		memcpy(seen[(*n)++], sha, sizeof(sha));
	return 0;
}

int rt__final_begin(rt_jobrun *jr, char *err, size_t errlen)
{
	const proto_job *j = &jr->spec;
	const char *mode = !job_has_graft(jr) || j->final.graft == PROTO_FINAL_DROP ? "drop"
	                   : j->final.graft == PROTO_FINAL_FROZEN ? "frozen" : "finetune";
	store_rank *lb = NULL;
	int n = 0, k = 0, rc;

	char (*seen)[65] = calloc((size_t)j->final.top + 1, sizeof(*seen));
	if (!seen)
		return rt__fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	if ((rc = store_leaderboard(jr->st, jr->job_id, STORE_SORT_ACCURACY, 0, &lb, &n))) {
		free(seen);
		return rt__fail(err, errlen, rc, "ranking the search: %s", store_errmsg(jr->st));
	}
	if ((rc = store_begin(jr->st)))
		goto out;
	for (int i = 0; i < n && k < j->final.top && !rc; i++)
		rc = add_training(jr, lb[i].candidate_id, i + 1, mode, seen, &k, err, errlen);
	if (!rc && (rc = store_job_set_phase(jr->st, jr->job_id, 1)))
		rt__fail(err, errlen, rc, "entering the final phase: %s", store_errmsg(jr->st));
	if (!rc && (rc = store_commit(jr->st)))
		rt__fail(err, errlen, rc, "entering the final phase: %s", store_errmsg(jr->st));
	if (rc)
		store_rollback(jr->st);
out:
	free(lb);
	free(seen);
	if (rc)
		return rc;
	jr->final_phase = 1;
	return reload(jr, err, errlen);
}

/* The training that wins on validation, the first of equals (the better
 * ranked), or -1 when none is done; of a candidate's two trainings under
 * final.graft best, the better counts. */
static int best_done(const rt_jobrun *jr)
{
	int best = -1;
	for (int i = 0; i < jr->nfinals; i++) {
		const store_final *f = &jr->finals[i];
		if (f->status == STORE_FINAL_DONE &&
		    (best < 0 || f->val_accuracy > jr->finals[best].val_accuracy))
			best = i;
	}
	return best;
}

static int find_training(const rt_jobrun *jr, int64_t candidate_id, const char *mode)
{
	for (int i = 0; i < jr->nfinals; i++)
		if (jr->finals[i].candidate_id == candidate_id && !strcmp(jr->finals[i].graft, mode))
			return i;
	return -1;
}

static int all_ended(const rt_jobrun *jr)
{
	for (int i = 0; i < jr->nfinals; i++)
		if (jr->finals[i].status == STORE_FINAL_PENDING ||
		    jr->finals[i].status == STORE_FINAL_RUNNING)
			return 0;
	return 1;
}

/* Under best, the winner of the fine-tuned trainings is trained once
 * more without the graft before anything is decided. */
static int wants_drop(const rt_jobrun *jr, int best)
{
	const store_final *f = &jr->finals[best];
	return jr->spec.final.graft == PROTO_FINAL_BEST && job_has_graft(jr) &&
	       !strcmp(f->graft, "finetune") && find_training(jr, f->candidate_id, "drop") < 0;
}

static int winner(const rt_jobrun *jr)
{
	for (int i = 0; i < jr->nfinals; i++)
		if (jr->finals[i].winner)
			return i;
	return -1;
}

/* The winner still needs its test score. */
static int wants_score(const rt_jobrun *jr, int w)
{
	return w >= 0 && job_has_test(jr) && isnan(jr->finals[w].test_accuracy) &&
	       !jr->finals[w].error[0];
}

int rt__final_done(const rt_jobrun *jr)
{
	if (!jr->final_phase || jr->in_flight || !all_ended(jr))
		return 0;
	int best = best_done(jr);
	if (best < 0)
		return 1; /* every training failed: nothing to score */
	if (wants_drop(jr, best))
		return 0;
	int w = winner(jr);
	return w >= 0 && !wants_score(jr, w);
}

/* What a failed training or scoring was, kept on its row. */
static void set_error(store_final *f, const char *what, const char *reason)
{
	snprintf(f->error, sizeof(f->error), "%s%s", what, reason && *reason ? reason : "unknown error");
}

static int update(rt_jobrun *jr, store_final *f, char *err, size_t errlen)
{
	int rc = store_final_update(jr->st, f);
	return rc ? rt__fail(err, errlen, rc, "recording the final stage: %s", store_errmsg(jr->st))
	          : 0;
}

static void task_common(rt_jobrun *jr, const store_final *f, enum rt_task_kind kind,
                        rt_jobrun_task *t)
{
	const proto_job *j = &jr->spec;
	int per = j->train.steps > 0 ? (f->steps + j->train.steps - 1) / j->train.steps : 1;

	t->kind = kind;
	t->candidate_id = f->candidate_id;
	t->eval_id = f->id;
	t->seq = rt__seq_of(jr, f->candidate_id);
	t->rung = -1;
	t->attempt = f->attempts;
	/* limits.time is per candidate; a training to the end may take as
	 * many candidates' time as it has their steps. */
	t->time_limit = fmin((double)j->time_limit * (per > 1 ? per : 1), 30 * 86400.0);
	t->live = 1;
	jr->in_flight++;
}

/* The task that trains f, from its checkpoint when one exists. */
static int train_task(rt_jobrun *jr, store_final *f, rt_jobrun_task *t, char *err,
                      size_t errlen)
{
	char save[4400], ckpt[4400];
	nn_arch a;
	int rc = proto_arch_parse(f->arch, strlen(f->arch), &a, err, errlen);
	if (rc)
		return rc;
	file_of(jr, f, "safetensors", save, sizeof(save));
	file_of(jr, f, "ckpt", ckpt, sizeof(ckpt));
	memset(t, 0, sizeof(*t));
	if (rt__task_base(jr, f->id, &a, save, &t->task))
		return rt__fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	t->task.graft_trainable = !strcmp(f->graft, "finetune");
	t->task.report_every = a.train.steps < REPORT_EVERY ? a.train.steps : REPORT_EVERY;
	t->task.checkpoint = strdup(ckpt);
	t->task.checkpoint_every = a.train.steps / CHECKPOINTS > MIN_CHECKPOINT_STEPS
	                           ? a.train.steps / CHECKPOINTS : MIN_CHECKPOINT_STEPS;
	if (rt__file_exists(ckpt))
		t->task.resume = strdup(ckpt);
	if (!t->task.checkpoint || (rt__file_exists(ckpt) && !t->task.resume)) {
		proto_task_clear(&t->task);
		return rt__fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	}
	f->status = STORE_FINAL_RUNNING;
	f->attempts++;
	if ((rc = update(jr, f, err, errlen))) {
		proto_task_clear(&t->task);
		return rc;
	}
	task_common(jr, f, RT_TASK_FINAL, t);
	return 1;
}

/* The task that scores the winner's trained weights on validation and,
 * for the first and only time in the job, on the test split. */
static int score_task(rt_jobrun *jr, store_final *f, rt_jobrun_task *t, char *err,
                      size_t errlen)
{
	nn_arch a;
	int rc = proto_arch_parse(f->arch, strlen(f->arch), &a, err, errlen);
	if (rc)
		return rc;
	memset(t, 0, sizeof(*t));
	if (rt__task_base(jr, f->id, &a, NULL, &t->task))
		return rt__fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	t->task.graft_trainable = !strcmp(f->graft, "finetune");
	t->task.weights_in = strdup(f->weights);
	t->task.test = 1;
	t->task.score_only = 1;
	if (!t->task.weights_in) {
		proto_task_clear(&t->task);
		return rt__fail(err, errlen, GRAFT_ENOMEM, "%s", "out of memory");
	}
	task_common(jr, f, RT_TASK_SCORE, t);
	jr->scoring = 1;
	return 1;
}

int rt__final_next(rt_jobrun *jr, rt_jobrun_task *t, char *err, size_t errlen)
{
	int rc;

	if (jr->scoring)
		return 0;
	for (int i = 0; i < jr->nfinals; i++)
		if (jr->finals[i].status == STORE_FINAL_PENDING)
			return train_task(jr, &jr->finals[i], t, err, errlen);
	if (!all_ended(jr))
		return 0;
	int best = best_done(jr);
	if (best < 0)
		return 0;
	if (wants_drop(jr, best)) {
		store_final *f = &jr->finals[best];
		if ((rc = add_training(jr, f->candidate_id, f->rank, "drop", NULL, NULL, err, errlen)) ||
		    (rc = reload(jr, err, errlen)))
			return rc;
		return rt__final_next(jr, t, err, errlen);
	}
	int w = winner(jr);
	if (w < 0) {
		jr->finals[best].winner = 1;
		if ((rc = update(jr, &jr->finals[best], err, errlen)))
			return rc;
		w = best;
	}
	return wants_score(jr, w) ? score_task(jr, &jr->finals[w], t, err, errlen) : 0;
}

static void end(rt_jobrun *jr, rt_jobrun_task *t)
{
	if (t->kind == RT_TASK_SCORE)
		jr->scoring = 0;
	jr->in_flight--;
	proto_task_clear(&t->task);
	t->live = 0;
}

static store_final *row_of(rt_jobrun *jr, const rt_jobrun_task *t)
{
	for (int i = 0; i < jr->nfinals; i++)
		if (jr->finals[i].id == t->eval_id)
			return &jr->finals[i];
	return NULL;
}

int rt__final_result(rt_jobrun *jr, rt_jobrun_task *t, const proto_result *r, char *err,
                     size_t errlen)
{
	store_final *f = row_of(jr, t);
	int rc;

	if (!f) {
		end(jr, t);
		return rt__fail(err, errlen, GRAFT_EINVAL, "%s", "a result for a final training "
		                "the job does not have");
	}
	if (t->kind == RT_TASK_SCORE) {
		f->test_accuracy = r->test_accuracy;
		if (isnan(r->test_accuracy))
			set_error(f, "scoring on the test split: ", "the worker gave no test accuracy");
	} else {
		char ckpt[4400];
		f->status = STORE_FINAL_DONE;
		f->val_accuracy = r->val_accuracy;
		f->step = f->steps;
		f->resumed_from = r->start_step;
		f->params = r->params;
		f->flops = r->flops;
		snprintf(f->weights, sizeof(f->weights), "%s", t->task.save ? t->task.save : "");
		file_of(jr, f, "ckpt", ckpt, sizeof(ckpt));
		unlink(ckpt); /* the finished weights stand in for it */
	}
	f->cpu_s += r->cpu_s;
	f->wall_s += r->wall_s;
	rc = update(jr, f, err, errlen);
	end(jr, t);
	return rc;
}

int rt__final_failure(rt_jobrun *jr, rt_jobrun_task *t, const char *reason, char *err,
                      size_t errlen)
{
	store_final *f = row_of(jr, t);
	int retry = 0, rc = 0;

	if (f && t->kind == RT_TASK_SCORE) {
		set_error(f, "scoring on the test split: ", reason);
		rc = update(jr, f, err, errlen);
	} else if (f) {
		retry = f->attempts <= jr->spec.retries;
		f->status = retry ? STORE_FINAL_PENDING : STORE_FINAL_FAILED;
		if (!retry)
			set_error(f, "", reason);
		rc = update(jr, f, err, errlen);
	}
	end(jr, t);
	return rc < 0 ? rc : retry;
}

void rt__final_abandon(rt_jobrun *jr, rt_jobrun_task *t)
{
	store_final *f = row_of(jr, t);
	if (f && t->kind == RT_TASK_FINAL && f->status == STORE_FINAL_RUNNING) {
		/* Unwritten, it stays running in the store, and the next open
		 * makes it pending all the same. */
		f->status = STORE_FINAL_PENDING;
		f->attempts--;
		store_final_update(jr->st, f);
	}
	end(jr, t);
}
