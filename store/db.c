/*
 * db.c - opening a store: SQLite settings, the schema and its migrations,
 * transactions and error reporting.
 *
 * Migrations are an append-only list: migration i takes a file from
 * user_version i to i + 1 in one transaction, so a file is never left half
 * migrated, and a file written by a newer graft (a higher user_version) is
 * refused rather than misread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_internal.h"

/* Version 1: the first schema.  Foreign keys say who owns what; CHECKs keep
 * states to the names the code knows; the cache index serves look-ups of a
 * key among done evaluations. */
static const char *const migrations[] = {
	"CREATE TABLE datasets ("
	"  id INTEGER PRIMARY KEY,"
	"  sha256 TEXT NOT NULL UNIQUE,"
	"  location TEXT NOT NULL,"
	"  format TEXT NOT NULL,"
	"  images INTEGER NOT NULL,"
	"  created REAL NOT NULL);"
	"CREATE TABLE grafts ("
	"  id INTEGER PRIMARY KEY,"
	"  sha256 TEXT NOT NULL UNIQUE,"
	"  path TEXT NOT NULL,"
	"  source TEXT NOT NULL,"
	"  layers INTEGER NOT NULL,"
	"  channels INTEGER NOT NULL,"
	"  steps INTEGER NOT NULL,"
	"  created REAL NOT NULL);"
	"CREATE TABLE jobs ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  spec TEXT NOT NULL,"
	"  spec_sha256 TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN"
	"    ('queued','running','paused','done','cancelled','failed')),"
	"  error TEXT,"
	"  total INTEGER NOT NULL,"
	"  steps INTEGER NOT NULL,"
	"  dataset_id INTEGER REFERENCES datasets(id),"
	"  graft_sha256 TEXT NOT NULL DEFAULT '',"
	"  overhead_cpu_s REAL NOT NULL DEFAULT 0,"
	"  created REAL NOT NULL,"
	"  updated REAL NOT NULL);"
	"CREATE INDEX jobs_spec ON jobs(spec_sha256);"
	"CREATE TABLE candidates ("
	"  id INTEGER PRIMARY KEY,"
	"  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  told_before INTEGER NOT NULL,"
	"  genome TEXT NOT NULL,"
	"  genome_sha256 TEXT NOT NULL,"
	"  parent_seq INTEGER NOT NULL,"
	"  generation INTEGER NOT NULL,"
	"  mutation TEXT NOT NULL,"
	"  params INTEGER NOT NULL,"
	"  flops INTEGER NOT NULL,"
	"  tell_seq INTEGER,"
	"  fitness REAL,"
	"  UNIQUE (job_id, seq),"
	"  UNIQUE (job_id, tell_seq));"
	"CREATE TABLE evaluations ("
	"  id INTEGER PRIMARY KEY,"
	"  candidate_id INTEGER NOT NULL REFERENCES candidates(id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL CHECK (status IN ('running','done','failed')),"
	"  genome_sha256 TEXT NOT NULL,"
	"  dataset_id INTEGER NOT NULL REFERENCES datasets(id),"
	"  graft_sha256 TEXT NOT NULL,"
	"  steps INTEGER NOT NULL,"
	"  seed INTEGER NOT NULL,"
	"  init TEXT NOT NULL,"
	"  key TEXT NOT NULL,"
	"  val_accuracy REAL, val_loss REAL, train_loss REAL,"
	"  wall_s REAL NOT NULL DEFAULT 0, cpu_s REAL NOT NULL DEFAULT 0,"
	"  params INTEGER, flops INTEGER,"
	"  cached INTEGER NOT NULL DEFAULT 0,"
	"  cached_from INTEGER REFERENCES evaluations(id),"
	"  inherited INTEGER NOT NULL DEFAULT 0,"
	"  feature_cache INTEGER NOT NULL DEFAULT 0,"
	"  worker TEXT NOT NULL DEFAULT '',"
	"  attempt INTEGER NOT NULL DEFAULT 1,"
	"  error TEXT,"
	"  weights TEXT NOT NULL DEFAULT '',"
	"  started REAL NOT NULL,"
	"  finished REAL);"
	"CREATE INDEX evaluations_candidate ON evaluations(candidate_id);"
	"CREATE INDEX evaluations_cache ON evaluations(key) WHERE status = 'done';",
	/* 2: an interrupted evaluation (its process stopped or died) is a
	 * column, not a pattern in the error text; it is not a failed attempt. */
	"ALTER TABLE evaluations ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;"
	"UPDATE evaluations SET interrupted = 1 WHERE status = 'failed' AND "
	"  error LIKE 'interrupted%';",
	/* 3: multi-fidelity.  An evaluation is one rung of a candidate's climb,
	 * scored on val_images validation images (0: all); a rung above the
	 * first is a promotion, recorded (a running row) before it runs, and
	 * its result updates the search in the order tell_seq gives.  A
	 * running job is in its search or its final phase.  The final stage's
	 * trainings are a table of their own: they are not
	 * candidates of the search, and only they ever see the test split. */
	"ALTER TABLE evaluations ADD COLUMN rung INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE evaluations ADD COLUMN val_images INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE evaluations ADD COLUMN tell_seq INTEGER NOT NULL DEFAULT -1;"
	"ALTER TABLE candidates ADD COLUMN rung INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE finals ("
	"  id INTEGER PRIMARY KEY,"
	"  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  candidate_id INTEGER NOT NULL REFERENCES candidates(id),"
	"  rank INTEGER NOT NULL,"
	"  graft TEXT NOT NULL CHECK (graft IN ('frozen','finetune','drop')),"
	"  arch TEXT NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('pending','running','done','failed')),"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  step INTEGER NOT NULL DEFAULT 0,"
	"  steps INTEGER NOT NULL,"
	"  resumed_from INTEGER NOT NULL DEFAULT 0,"
	"  weights TEXT NOT NULL DEFAULT '',"
	"  val_accuracy REAL, test_accuracy REAL,"
	"  params INTEGER NOT NULL DEFAULT 0, flops INTEGER NOT NULL DEFAULT 0,"
	"  cpu_s REAL NOT NULL DEFAULT 0, wall_s REAL NOT NULL DEFAULT 0,"
	"  winner INTEGER NOT NULL DEFAULT 0,"
	"  error TEXT,"
	"  UNIQUE (job_id, candidate_id, graft));"
	"ALTER TABLE jobs ADD COLUMN phase TEXT NOT NULL DEFAULT 'search'"
	"  CHECK (phase IN ('search','final'));"
	"ALTER TABLE jobs ADD COLUMN search_wall_s REAL NOT NULL DEFAULT 0;",
	/* 4: image folders name their classes (a JSON array; NULL for data that
	 * names none) and may have left bad images out. */
	"ALTER TABLE datasets ADD COLUMN classes TEXT;"
	"ALTER TABLE datasets ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;",
	/* 5: the training loss an evaluation's worker reported as it went, for
	 * the dashboard's curves: a JSON array of [step, loss]; NULL when none
	 * was seen (a cache hit, or an evaluation made before version 5). */
	"ALTER TABLE evaluations ADD COLUMN curve TEXT;",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(*migrations)))

_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

double store__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *store__append(void **v, int *count, int *cap, size_t size)
{
	if (*count == *cap) {
		int ncap = *cap ? 2 * *cap : 16;
		void *nv = realloc(*v, size * (size_t)ncap);
		if (!nv)
			return NULL;
		*v = nv;
		*cap = ncap;
	}
	char *slot = (char *)*v + size * (size_t)(*count)++;
	memset(slot, 0, size);
	return slot;
}

/* SQLite's message, and for the errors that are the file's (I/O, full,
 * read-only, cannot open) which file and what the system said, so that a
 * person knows where to look: "disk I/O error" alone names neither. */
static void describe(store *s, int code, const char *msg, char *out, size_t len)
{
	int primary = code & 0xff, os = sqlite3_system_errno(s->db);
	const char *file = sqlite3_db_filename(s->db, "main");
	if ((primary == SQLITE_IOERR || primary == SQLITE_FULL || primary == SQLITE_READONLY ||
	     primary == SQLITE_CANTOPEN) && file && *file)
		snprintf(out, len, "%s (%s%s%s)", msg, file, os ? ": " : "", os ? strerror(os) : "");
	else
		snprintf(out, len, "%s", msg);
}

int store__fail(store *s, const char *what)
{
	char why[GRAFT_ERRLEN];
	describe(s, sqlite3_extended_errcode(s->db), sqlite3_errmsg(s->db), why, sizeof(why));
	snprintf(s->err, sizeof(s->err), "%.100s: %.400s", what, why);
	return GRAFT_ESQL;
}

sqlite3_stmt *store__prepare(store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		store__fail(s, "prepare");
		return NULL;
	}
	return st;
}

int store__done(store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	int ret = rc == SQLITE_DONE ? 0 : store__fail(s, what);
	sqlite3_finalize(st);
	return ret;
}

int store__exec(store *s, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		describe(s, sqlite3_extended_errcode(s->db), msg ? msg : "unknown SQLite error",
		         s->err, sizeof(s->err));
		sqlite3_free(msg);
		return GRAFT_ESQL;
	}
	return 0;
}

void store__text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

void store__col(sqlite3_stmt *st, int i, char *buf, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(buf, len, "%s", t ? (const char *)t : "");
}

const char *store_errmsg(const store *s)
{
	return s ? s->err : "no store";
}

/* Transactions nest: the outer one is BEGIN IMMEDIATE (the write lock is
 * taken at once, so a busy file fails here rather than halfway), inner
 * ones are savepoints, so a helper that wants its writes atomic can begin
 * and commit whether or not its caller already has. */
int store_begin(store *s)
{
	char sql[40];
	if (s->depth == 0)
		snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE");
	else
		snprintf(sql, sizeof(sql), "SAVEPOINT s%d", s->depth);
	int rc = store__exec(s, sql);
	if (!rc)
		s->depth++;
	return rc;
}

int store_commit(store *s)
{
	char sql[40];
	if (s->depth <= 0) {
		snprintf(s->err, sizeof(s->err), "commit without a transaction");
		return GRAFT_ESQL;
	}
	if (s->depth == 1)
		snprintf(sql, sizeof(sql), "COMMIT");
	else
		snprintf(sql, sizeof(sql), "RELEASE s%d", s->depth - 1);
	int rc = store__exec(s, sql);
	if (!rc)
		s->depth--;
	return rc;
}

/* Undoes the innermost transaction: a savepoint is rolled back to and
 * released, the outer transaction rolled back. */
void store_rollback(store *s)
{
	char sql[64];
	if (s->depth <= 0)
		return;
	if (s->depth > 1) {
		snprintf(sql, sizeof(sql), "ROLLBACK TO s%d; RELEASE s%d", s->depth - 1,
		         s->depth - 1);
		sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	} else if (!sqlite3_get_autocommit(s->db)) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	s->depth--;
}

int store_schema_version(store *s)
{
	sqlite3_stmt *st = store__prepare(s, "PRAGMA user_version");
	int v = -1;
	if (st && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int migrate(store *s)
{
	int v = store_schema_version(s);
	char sql[64];

	if (v < 0)
		return store__fail(s, "reading the schema version");
	if (v > NMIGRATIONS) {
		snprintf(s->err, sizeof(s->err), "the file has schema version %d, newer than "
		         "this graft's %d; use a newer graft", v, NMIGRATIONS);
		return GRAFT_EFORMAT;
	}
	for (; v < NMIGRATIONS; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (store_begin(s) || store__exec(s, migrations[v]) || store__exec(s, sql) ||
		    store_commit(s)) {
			char why[GRAFT_ERRLEN];
			snprintf(why, sizeof(why), "%s", s->err);
			store_rollback(s);
			snprintf(s->err, sizeof(s->err), "migrating to schema version %d: %.400s",
			         v + 1, why);
			return GRAFT_ESQL;
		}
	}
	return 0;
}

int store_open(const char *path, store **out, char *err, size_t errlen)
{
	store *s = calloc(1, sizeof(*s));
	int rc = GRAFT_ESQL;

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return GRAFT_ENOMEM;
	}
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)
	    != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
		goto fail;
	}
	/* A writer waits for a checkpointing reader rather than failing at once;
	 * synchronous FULL: a commit acknowledged to a client survives a power cut. */
	sqlite3_busy_timeout(s->db, 5000);
	if (store__exec(s, "PRAGMA journal_mode = WAL") ||
	    store__exec(s, "PRAGMA foreign_keys = ON") ||
	    store__exec(s, "PRAGMA synchronous = FULL")) {
		snprintf(err, errlen, "%s: not a graft store (%s)", path, s->err);
		goto fail;
	}
	rc = migrate(s);
	if (rc) {
		snprintf(err, errlen, "%s: %s", path, s->err);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	sqlite3_close(s->db);
	free(s);
	return rc;
}

void store_close(store *s)
{
	if (!s)
		return;
	sqlite3_close(s->db);
	free(s);
}
