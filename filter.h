/*
 * filter.h - filter specs: the table of every filter, parsing a spec into
 * a configured tap, and whether a tap applies to a connection.
 */
#ifndef FILTER_H
#define FILTER_H

#include <stdio.h>

#include "tap.h"

/* Parses one filter spec into t (udp: the route carries datagrams). */
int	 tap_parse(const char *spec, int udp, struct tap *t, char *err,
	    size_t errlen) __attribute__((nonnull, warn_unused_result));
void	 tap_free(struct tap *t) __attribute__((nonnull));
/* Returns 1 if the tap applies to the connection (src=, dst=, dport=, sni=). */
int	 tap_match(const struct tap *t, const struct flow *f)
	    __attribute__((nonnull));
/* Returns 1 if the tap takes standard output for itself (pcap:-). */
int	 tap_writes_stdout(const struct tap *t) __attribute__((nonnull));
/* The filters' usage lines, for --help (indent, wrapped). */
void	 filters_help(FILE *f);

#endif /* FILTER_H */
