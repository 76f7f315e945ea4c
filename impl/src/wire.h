/* wire.h: message frames for Pipe/Connection, as billiard writes them.
 *
 * A frame is a 4-byte big-endian signed length, then the payload. Payloads
 * of 2 GiB and more use CPython's escape: a length of -1, then an 8-byte
 * big-endian length. Any other negative length is malformed. Pure: no I/O,
 * no malloc, no globals, so the decoder can be fuzzed on its own. */
#ifndef BL_WIRE_H
#define BL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define BL__WIRE_HDR_SHORT 4
#define BL__WIRE_HDR_LONG 12  /* -1 escape + 8-byte length */
#define BL__WIRE_HDR_MAX BL__WIRE_HDR_LONG
/* Largest payload the 4-byte form carries (billiard packs "!i"). */
#define BL__WIRE_SHORT_MAX 0x7fffffffu
/* Sanity cap on any length read from a peer: a larger header is
 * BL_EPROTOCOL, never an allocation attempt. 1 TiB. */
#define BL__WIRE_MAX_PAYLOAD ((uint64_t)1 << 40)

/* Encode the header for a payload of len bytes into out; returns its size
 * (4 or 12). len must not exceed BL__WIRE_MAX_PAYLOAD. */
size_t bl__wire_encode_header(uint8_t out[BL__WIRE_HDR_MAX], uint64_t len);

/* From the first 4 bytes of a header: the full header size (4 or 12), or
 * BL_EPROTOCOL for a negative length other than the -1 escape. */
int bl__wire_header_size(const uint8_t first[BL__WIRE_HDR_SHORT]);

/* Decode a complete header of n bytes (n = bl__wire_header_size()).
 * 0 and *len, or BL_EPROTOCOL when the header is malformed, n does not
 * match its form, or the length exceeds max (itself capped at
 * BL__WIRE_MAX_PAYLOAD). */
int bl__wire_decode_header(const uint8_t *hdr, size_t n, uint64_t max,
                           uint64_t *len);

/* Parse one frame at the start of buf[0..n). Returns the bytes the whole
 * frame occupies (> 0) with *payload and *len set; 0 when buf holds only part
 * of a frame (need more); BL_EPROTOCOL when malformed or longer than max.
 * Never reads beyond buf[n-1]. */
long long bl__wire_parse(const void *buf, size_t n, uint64_t max,
                         const uint8_t **payload, uint64_t *len);

#endif /* BL_WIRE_H */
