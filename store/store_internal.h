/*
 * store_internal.h - what the files of store/ share: the handle and small
 * wrappers that turn SQLite's codes into GRAFT_E* and a message.
 */
#ifndef GRAFT_STORE_INTERNAL_H
#define GRAFT_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

struct store {
	sqlite3 *db;
	int depth;              /* open transactions: 1 the outer, more savepoints */
	char err[GRAFT_ERRLEN];
};

/* Records SQLite's message for rc (prefixed by what) and returns GRAFT_ESQL. */
int store__fail(store *s, const char *what);

/* Prepares sql; NULL after recording the error. */
sqlite3_stmt *store__prepare(store *s, const char *sql);

/* Steps a statement that returns no rows and finalizes it: 0 or GRAFT_ESQL. */
int store__done(store *s, sqlite3_stmt *st, const char *what);

/* Runs a statement without parameters. */
int store__exec(store *s, const char *sql);

/* Binds v as text (NULL binds NULL). */
void store__text(sqlite3_stmt *st, int i, const char *v);

/* Copies column i (may be NULL) into buf of size len. */
void store__col(sqlite3_stmt *st, int i, char *buf, size_t len);

/* Appends one zeroed element of size bytes to the array *v of *count
 * elements (capacity *cap, grown by doubling) and returns it; NULL when out
 * of memory (the array is left as it was). */
void *store__append(void **v, int *count, int *cap, size_t size);

/* Unix time now, with sub-second precision. */
double store__now(void);

#endif
