/*
 * opts.c - the options' defaults.
 */
#include "opts.h"

struct options opt = {
	.udp_timeout = 60,
	.max_sessions = -1,		/* from the descriptor limit */
	.max_per_source = -1,		/* half of max_sessions */
};
