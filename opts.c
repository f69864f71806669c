/*
 * opts.c - the options' defaults.
 */
#include "opts.h"

struct options opt = {
	.udp_timeout = 60,
};
