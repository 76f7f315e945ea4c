/* node.h: a YAML document as a tree that remembers where each node was
 * (line:col, 1-based), so every validation error can point at it. */
#ifndef BC_NODE_H
#define BC_NODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { BC_SCALAR, BC_MAP, BC_SEQ } bc_node_kind_t;

typedef struct bc_node bc_node_t;
struct bc_node {
  bc_node_kind_t kind;
  int line, col;
  char *str;          /* BC_SCALAR: the text */
  bool plain;         /* BC_SCALAR: unquoted (so null/true/1 are typed) */
  size_t n;           /* BC_MAP: pairs, BC_SEQ: items */
  bc_node_t **keys;   /* BC_MAP: key nodes (scalars) */
  bc_node_t **items;  /* BC_MAP: values, BC_SEQ: items */
};

/* Parses the first document of a YAML file. On error returns NULL and sets
 * *err to "line:col: error: ..." (malloc'd, without the path). An empty file
 * gives an empty map. */
bc_node_t *bc_node_parse(const char *text, size_t len, char **err);
void bc_node_free(bc_node_t **n);

bc_node_t *bc_node_get(const bc_node_t *map, const char *key);
bc_node_t *bc_node_key(const bc_node_t *map, const char *key); /* the key node */
const char *bc_node_kind_name(const bc_node_t *n); /* "a map", "a string", ... */
bool bc_node_is_null(const bc_node_t *n);

/* Typed scalar to JSON: plain null/~ -> null, true/false -> bool, integers,
 * floats, else strings; quoted scalars are strings. */
json_t *bc_node_to_json(const bc_node_t *n);

#endif
