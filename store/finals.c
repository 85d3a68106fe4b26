/*
 * finals.c - the final stage's trainings: which architectures of a job are
 * trained to the end, how far each has got, and which one won.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static const char *const status_names[] = { "pending", "running", "done", "failed" };

const char *store_final_status_name(int status)
{
	return status >= 0 && status <= STORE_FINAL_FAILED ? status_names[status] : "?";
}

static int status_parse(const char *name)
{
	for (int i = 0; i <= STORE_FINAL_FAILED; i++)
		if (!strcmp(name, status_names[i]))
			return i;
	return STORE_FINAL_FAILED;
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
	if (isnan(v))
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_double(st, i, v);
}

static double col_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

int store_final_add(store *s, store_final *f)
{
	if (!f->arch || f->status < 0 || f->status > STORE_FINAL_FAILED)
		return GRAFT_EINVAL;
	sqlite3_stmt *st = store__prepare(s, "INSERT INTO finals (job_id, candidate_id, rank, "
	                                  "graft, arch, status, steps) VALUES (?,?,?,?,?,?,?)");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, f->job_id);
	sqlite3_bind_int64(st, 2, f->candidate_id);
	sqlite3_bind_int(st, 3, f->rank);
	store__text(st, 4, f->graft);
	store__text(st, 5, f->arch);
	store__text(st, 6, status_names[f->status]);
	sqlite3_bind_int(st, 7, f->steps);
	int rc = store__done(s, st, "adding a final training");
	if (!rc)
		f->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_final_update(store *s, const store_final *f)
{
	if (f->status < 0 || f->status > STORE_FINAL_FAILED)
		return GRAFT_EINVAL;
	sqlite3_stmt *st = store__prepare(s, "UPDATE finals SET status = ?, attempts = ?, step = ?, "
	                                  "weights = ?, val_accuracy = ?, test_accuracy = ?, "
	                                  "params = ?, flops = ?, cpu_s = ?, wall_s = ?, "
	                                  "winner = ?, error = ?, resumed_from = ? WHERE id = ?");
	if (!st)
		return GRAFT_ESQL;
	store__text(st, 1, status_names[f->status]);
	sqlite3_bind_int(st, 2, f->attempts);
	sqlite3_bind_int(st, 3, f->step);
	store__text(st, 4, f->weights);
	bind_real(st, 5, f->val_accuracy);
	bind_real(st, 6, f->test_accuracy);
	sqlite3_bind_int64(st, 7, f->params);
	sqlite3_bind_int64(st, 8, f->flops);
	sqlite3_bind_double(st, 9, f->cpu_s);
	sqlite3_bind_double(st, 10, f->wall_s);
	sqlite3_bind_int(st, 11, f->winner);
	store__text(st, 12, f->error[0] ? f->error : NULL);
	sqlite3_bind_int(st, 13, f->resumed_from);
	sqlite3_bind_int64(st, 14, f->id);
	int rc = store__done(s, st, "recording a final training");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

#define FINAL_COLS "id, job_id, candidate_id, rank, graft, arch, status, attempts, step, " \
	"steps, weights, val_accuracy, test_accuracy, params, flops, cpu_s, wall_s, winner, error, " \
	"resumed_from"

static int read_final(sqlite3_stmt *st, store_final *f)
{
	char status[16];
	memset(f, 0, sizeof(*f));
	f->id = sqlite3_column_int64(st, 0);
	f->job_id = sqlite3_column_int64(st, 1);
	f->candidate_id = sqlite3_column_int64(st, 2);
	f->rank = sqlite3_column_int(st, 3);
	store__col(st, 4, f->graft, sizeof(f->graft));
	f->arch = strdup((const char *)sqlite3_column_text(st, 5));
	store__col(st, 6, status, sizeof(status));
	f->status = status_parse(status);
	f->attempts = sqlite3_column_int(st, 7);
	f->step = sqlite3_column_int(st, 8);
	f->steps = sqlite3_column_int(st, 9);
	store__col(st, 10, f->weights, sizeof(f->weights));
	f->val_accuracy = col_real(st, 11);
	f->test_accuracy = col_real(st, 12);
	f->params = sqlite3_column_int64(st, 13);
	f->flops = sqlite3_column_int64(st, 14);
	f->cpu_s = sqlite3_column_double(st, 15);
	f->wall_s = sqlite3_column_double(st, 16);
	f->winner = sqlite3_column_int(st, 17);
	store__col(st, 18, f->error, sizeof(f->error));
	f->resumed_from = sqlite3_column_int(st, 19);
	return f->arch ? 0 : GRAFT_ENOMEM;
}

int store_final_get(store *s, int64_t id, store_final *f)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT " FINAL_COLS " FROM finals WHERE id = ?");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = read_final(st, f);
	else
		rc = rc == SQLITE_DONE ? STORE_NOTFOUND : store__fail(s, "reading a final training");
	sqlite3_finalize(st);
	return rc;
}

int store_finals(store *s, int64_t job_id, store_final **out, int *n)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT " FINAL_COLS " FROM finals WHERE job_id = ? "
	                                  "ORDER BY id");
	store_final *v = NULL;
	int count = 0, cap = 0, rc, bad = 0;

	*out = NULL;
	*n = 0;
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, job_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_final *f = store__append((void **)&v, &count, &cap, sizeof(*v));
		if (!f || (bad = read_final(st, f))) {
			bad = bad ? bad : GRAFT_ENOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (!bad && rc != SQLITE_DONE)
		bad = store__fail(s, "listing final trainings");
	if (bad) {
		store_finals_free(v, count);
		return bad;
	}
	*out = v;
	*n = count;
	return 0;
}

void store_finals_free(store_final *f, int n)
{
	for (int i = 0; i < n && f; i++)
		free(f[i].arch);
	free(f);
}
