/*
 * jobs.c - the rows that describe a job's inputs: datasets, grafts, jobs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static const char *const state_names[STORE_JOB_NSTATES] = {
	"queued", "running", "paused", "done", "cancelled", "failed"
};

const char *store_job_state_name(int state)
{
	return state >= 0 && state < STORE_JOB_NSTATES ? state_names[state] : "?";
}

int store_job_state_parse(const char *name)
{
	for (int i = 0; name && i < STORE_JOB_NSTATES; i++)
		if (!strcmp(name, state_names[i]))
			return i;
	return GRAFT_EINVAL;
}

/* Runs a one-column integer query with one text parameter. */
static int find_id(store *s, const char *sql, const char *arg, int64_t *id)
{
	sqlite3_stmt *st = store__prepare(s, sql);
	if (!st)
		return GRAFT_ESQL;
	store__text(st, 1, arg);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	int ret = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? STORE_NOTFOUND : store__fail(s, "look-up");
	sqlite3_finalize(st);
	return ret;
}

int store_dataset_put(store *s, const store_dataset *d, int64_t *id)
{
	if (!d || !d->sha256[0] || !d->format[0])
		return GRAFT_EINVAL;
	/* Insert-or-keep, then look up: two connections may record the same
	 * dataset at once (graftd opens jobs on several threads). */
	sqlite3_stmt *st = store__prepare(s, "INSERT INTO datasets (sha256, location, format, "
	                                  "images, created, classes, skipped) VALUES (?, ?, ?, ?, "
	                                  "?, ?, ?) ON CONFLICT (sha256) DO NOTHING");
	int rc;
	if (!st)
		return GRAFT_ESQL;
	store__text(st, 1, d->sha256);
	store__text(st, 2, d->location);
	store__text(st, 3, d->format);
	sqlite3_bind_int64(st, 4, d->images);
	sqlite3_bind_double(st, 5, store__now());
	store__text(st, 6, d->classes);
	sqlite3_bind_int(st, 7, d->skipped);
	rc = store__done(s, st, "adding a dataset");
	return rc ? rc : find_id(s, "SELECT id FROM datasets WHERE sha256 = ?", d->sha256, id);
}

int store_dataset_get(store *s, int64_t id, store_dataset *d)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT sha256, location, format, images, classes, "
	                                  "skipped FROM datasets WHERE id = ?");
	int rc;

	memset(d, 0, sizeof(*d));
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	int oom = 0;
	if (rc == SQLITE_ROW) {
		d->id = id;
		store__col(st, 0, d->sha256, sizeof(d->sha256));
		store__col(st, 1, d->location, sizeof(d->location));
		store__col(st, 2, d->format, sizeof(d->format));
		d->images = sqlite3_column_int64(st, 3);
		const unsigned char *c = sqlite3_column_text(st, 4);
		d->classes = c ? strdup((const char *)c) : NULL;
		oom = c && !d->classes;
		d->skipped = sqlite3_column_int(st, 5);
	}
	int ret = rc == SQLITE_ROW ? (oom ? GRAFT_ENOMEM : 0)
	          : rc == SQLITE_DONE ? STORE_NOTFOUND : store__fail(s, "reading a dataset");
	sqlite3_finalize(st);
	return ret;
}

int store_graft_put(store *s, const store_graft *g, int64_t *id)
{
	int64_t dummy;
	if (!id)
		id = &dummy;
	sqlite3_stmt *st = store__prepare(s, "INSERT INTO grafts (sha256, path, source, layers, "
	                                  "channels, steps, created) VALUES (?,?,?,?,?,?,?) "
	                                  "ON CONFLICT (sha256) DO NOTHING");
	int rc;
	if (!st)
		return GRAFT_ESQL;
	store__text(st, 1, g->sha256);
	store__text(st, 2, g->path);
	store__text(st, 3, g->source);
	sqlite3_bind_int(st, 4, g->layers);
	sqlite3_bind_int(st, 5, g->channels);
	sqlite3_bind_int(st, 6, g->steps);
	sqlite3_bind_double(st, 7, g->created > 0 ? g->created : store__now());
	rc = store__done(s, st, "adding a graft");
	return rc ? rc : find_id(s, "SELECT id FROM grafts WHERE sha256 = ?", g->sha256, id);
}

int store_graft_list(store *s, store_graft **out, int *n)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT id, sha256, path, source, layers, channels, "
	                                  "steps, created FROM grafts ORDER BY id");
	store_graft *v = NULL;
	int count = 0, cap = 0, rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return GRAFT_ESQL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_graft *g = store__append((void **)&v, &count, &cap, sizeof(*v));
		if (!g) {
			free(v);
			sqlite3_finalize(st);
			return GRAFT_ENOMEM;
		}
		g->id = sqlite3_column_int64(st, 0);
		store__col(st, 1, g->sha256, sizeof(g->sha256));
		store__col(st, 2, g->path, sizeof(g->path));
		store__col(st, 3, g->source, sizeof(g->source));
		g->layers = sqlite3_column_int(st, 4);
		g->channels = sqlite3_column_int(st, 5);
		g->steps = sqlite3_column_int(st, 6);
		g->created = sqlite3_column_double(st, 7);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return store__fail(s, "listing grafts");
	}
	*out = v;
	*n = count;
	return 0;
}

int store_job_add(store *s, store_job *j)
{
	if (!j->spec || j->state < 0 || j->state >= STORE_JOB_NSTATES)
		return GRAFT_EINVAL;
	sqlite3_stmt *st = store__prepare(s, "INSERT INTO jobs (name, spec, spec_sha256, state, "
	                                  "error, total, steps, created, updated) "
	                                  "VALUES (?,?,?,?,?,?,?,?,?)");
	if (!st)
		return GRAFT_ESQL;
	j->created = j->updated = store__now();
	store__text(st, 1, j->name);
	store__text(st, 2, j->spec);
	store__text(st, 3, j->spec_sha256);
	store__text(st, 4, state_names[j->state]);
	store__text(st, 5, j->error[0] ? j->error : NULL);
	sqlite3_bind_int(st, 6, j->total);
	sqlite3_bind_int(st, 7, j->steps);
	sqlite3_bind_double(st, 8, j->created);
	sqlite3_bind_double(st, 9, j->updated);
	int rc = store__done(s, st, "adding a job");
	if (!rc)
		j->id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_job_get(store *s, int64_t id, store_job *j)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT name, spec, spec_sha256, state, error, total, "
	                                  "steps, dataset_id, graft_sha256, overhead_cpu_s, "
	                                  "created, updated, phase, search_wall_s FROM jobs "
	                                  "WHERE id = ?");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? STORE_NOTFOUND : store__fail(s, "reading a job");
	}
	char state[16];
	memset(j, 0, sizeof(*j));
	j->id = id;
	store__col(st, 0, j->name, sizeof(j->name));
	j->spec = strdup((const char *)sqlite3_column_text(st, 1));
	store__col(st, 2, j->spec_sha256, sizeof(j->spec_sha256));
	store__col(st, 3, state, sizeof(state));
	j->state = store_job_state_parse(state);
	store__col(st, 4, j->error, sizeof(j->error));
	j->total = sqlite3_column_int(st, 5);
	j->steps = sqlite3_column_int(st, 6);
	j->dataset_id = sqlite3_column_int64(st, 7);
	store__col(st, 8, j->graft_sha256, sizeof(j->graft_sha256));
	j->overhead_cpu_s = sqlite3_column_double(st, 9);
	j->created = sqlite3_column_double(st, 10);
	j->updated = sqlite3_column_double(st, 11);
	const char *phase = (const char *)sqlite3_column_text(st, 12);
	j->final_phase = phase && !strcmp(phase, "final");
	j->search_wall_s = sqlite3_column_double(st, 13);
	sqlite3_finalize(st);
	return j->spec ? 0 : GRAFT_ENOMEM;
}

void store_job_clear(store_job *j)
{
	free(j->spec);
	j->spec = NULL;
}

int store_job_find_spec(store *s, const char *spec_sha256, int64_t *id)
{
	return find_id(s, "SELECT id FROM jobs WHERE spec_sha256 = ? ORDER BY id DESC LIMIT 1",
	               spec_sha256, id);
}

int store_job_ids(store *s, int64_t **ids, int *n)
{
	sqlite3_stmt *st = store__prepare(s, "SELECT id FROM jobs ORDER BY id");
	int64_t *v = NULL;
	int count = 0, cap = 0, rc;

	*ids = NULL;
	*n = 0;
	if (!st)
		return GRAFT_ESQL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t *id = store__append((void **)&v, &count, &cap, sizeof(*v));
		if (!id) {
			free(v);
			sqlite3_finalize(st);
			return GRAFT_ENOMEM;
		}
		*id = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return store__fail(s, "listing jobs");
	}
	*ids = v;
	*n = count;
	return 0;
}

int store_job_set_state(store *s, int64_t id, int state, const char *error)
{
	if (state < 0 || state >= STORE_JOB_NSTATES)
		return GRAFT_EINVAL;
	sqlite3_stmt *st = store__prepare(s, "UPDATE jobs SET state = ?, error = ?, updated = ? "
	                                  "WHERE id = ?");
	if (!st)
		return GRAFT_ESQL;
	store__text(st, 1, state_names[state]);
	store__text(st, 2, error && *error ? error : NULL);
	sqlite3_bind_double(st, 3, store__now());
	sqlite3_bind_int64(st, 4, id);
	int rc = store__done(s, st, "setting a job's state");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

int store_job_set_phase(store *s, int64_t id, int final)
{
	sqlite3_stmt *st = store__prepare(s, "UPDATE jobs SET phase = ?, updated = ? WHERE id = ?");
	if (!st)
		return GRAFT_ESQL;
	store__text(st, 1, final ? "final" : "search");
	sqlite3_bind_double(st, 2, store__now());
	sqlite3_bind_int64(st, 3, id);
	int rc = store__done(s, st, "setting a job's phase");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

int store_job_set_search_wall(store *s, int64_t id, double seconds)
{
	sqlite3_stmt *st = store__prepare(s, "UPDATE jobs SET search_wall_s = ? WHERE id = ?");
	if (!st)
		return GRAFT_ESQL;
	sqlite3_bind_double(st, 1, seconds);
	sqlite3_bind_int64(st, 2, id);
	int rc = store__done(s, st, "recording a job's search time");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

int store_job_set_inputs(store *s, int64_t id, int64_t dataset_id, const char *graft_sha256,
                         double overhead_cpu_s)
{
	sqlite3_stmt *st = store__prepare(s, "UPDATE jobs SET dataset_id = ?, graft_sha256 = ?, "
	                                  "overhead_cpu_s = ?, updated = ? WHERE id = ?");
	if (!st)
		return GRAFT_ESQL;
	if (dataset_id > 0)
		sqlite3_bind_int64(st, 1, dataset_id);
	else
		sqlite3_bind_null(st, 1);
	store__text(st, 2, graft_sha256 ? graft_sha256 : "");
	sqlite3_bind_double(st, 3, overhead_cpu_s);
	sqlite3_bind_double(st, 4, store__now());
	sqlite3_bind_int64(st, 5, id);
	int rc = store__done(s, st, "recording a job's inputs");
	return rc ? rc : sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}
