/* corpus.h: turning command-line paths into loaded scenarios. */
#ifndef BC_CORPUS_H
#define BC_CORPUS_H

#include "scenario.h"

typedef struct bc_corpus {
  bc_strv_t files;           /* scenario files, sorted, unique */
  bc_scenario_t **sc;        /* loaded (NULL where invalid) */
  size_t n;
  bc_features_t *features;   /* one per distinct features file */
  size_t nfeatures;
  bc_diag_t diag;            /* all errors of all files */
} bc_corpus_t;

/* Expands paths (files, directories recursed for *.yaml, globs). Errors
 * (no such path) go to stderr; returns -1 then. */
int bc_corpus_collect(bc_corpus_t *c, char *const paths[], int n);
/* Loads every file; filter (substring or glob on ids) may be NULL. Returns the
 * number of errors. */
size_t bc_corpus_load(bc_corpus_t *c, const char *filter);
bool bc_corpus_filter_match(const char *filter, const char *id);
void bc_corpus_free(bc_corpus_t *c);

#endif
