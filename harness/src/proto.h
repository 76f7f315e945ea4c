/* proto.h: the driver protocol at the line level (harness/README.md,
 * "Driver protocol"): the hello, then every stdout line classified as an
 * event or the reply to the pending command, and a reply's shape. Pure
 * functions of their input (no driver, no run state), so that the fuzz
 * target fuzz/fuzz_driver_proto.c calls exactly what billiard-conform runs. */
#ifndef BC_PROTO_H
#define BC_PROTO_H

#include <jansson.h>
#include <stddef.h>

#define BC_PROTOCOL 1

typedef enum { BC_LINE_EVENT = 1, BC_LINE_REPLY = 2 } bc_line_kind_t;

/* The first line: the hello. 0 with *hello the "hello" object (a new
 * reference), or -1 with *why (malloc'd) naming the violation. */
int bc_proto_hello(const char *line, json_t **hello, char **why);

/* A later line. BC_LINE_EVENT or BC_LINE_REPLY (whose integer "id" is
 * pending_id) with *msg the whole message (a new reference; "v" checked),
 * or -1 with *why (malloc'd) naming the violation. */
int bc_proto_line(const char *line, long pending_id, json_t **msg, char **why);

/* A reply's shape: "ok" boolean; ok:false with an error object holding a
 * string "type"; ok:true with an object "result", added (empty) when
 * absent. 0, or -1. */
int bc_proto_check_reply(json_t *reply);

/* A short, printable form of a JSON value (large values are cut). */
char *bc_proto_short_json(const json_t *v, size_t max);

#endif
