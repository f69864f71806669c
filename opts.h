/*
 * opts.h - the process-wide options, in one place.  tproxy.c fills them
 * from the command line; every other file only reads them.
 */
#ifndef OPTS_H
#define OPTS_H

struct options {
	int		 json;		/* --json */
	int		 verbose;	/* -1 quiet, 0 normal, >0 more */
	long		 max_conns;	/* 0 = no cap */
	long		 max_sessions;	/* UDP sessions; 0 = no cap */
	long		 max_per_source; /* UDP sessions of one address; 0 = no cap */
	long		 idle_timeout;	/* seconds, 0 = none */
	long		 udp_timeout;	/* seconds */
	const char	*user;
	int		 print_rules;
	const char	*ca_cert, *ca_key;
	const char	*control;	/* --control=PATH */
};

extern struct options opt;

#endif /* OPTS_H */
