/*
 * fuzz_control.c - libFuzzer harness for the control socket's command
 * parser (ctlcmd.c): a line from whoever may connect to the socket.
 * Besides not crashing, it checks what the runner relies on: an error
 * has a message; numbers are in range; SPEC lies within the line; the
 * bytes of replace and answer fit the buffer given.
 */
#include <stdlib.h>
#include <string.h>

#include "../../ctlcmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t hex[CTL_LINE_MAX / 2 + 1];
	const char *line = (const char *)data;
	struct ctlcmd cmd;
	char err[256];
	size_t cap = size % 7 == 0 ? 4 : sizeof(hex);

	err[0] = '\0';
	if (ctl_parse(line, size, &cmd, hex, cap, err, sizeof(err)) == -1) {
		if (err[0] == '\0' || strlen(err) >= sizeof(err))
			abort();
		return 0;
	}
	if (cmd.hexlen > cap)
		abort();
	switch (cmd.op) {
	case CTL_ADD_FILTER:
		if (cmd.spec < line || cmd.speclen == 0 ||
		    cmd.spec + cmd.speclen > line + size || cmd.route < 1)
			abort();
		break;
	case CTL_DEL_FILTER:
	case CTL_ENABLE_FILTER:
	case CTL_DISABLE_FILTER:
		if (cmd.route < 1 || cmd.index < 1)
			abort();
		break;
	case CTL_KILL_CONN:
	case CTL_FORWARD:
	case CTL_DROP:
	case CTL_REPLACE:
	case CTL_ANSWER:
		if (cmd.id < 1)
			abort();
		break;
	default:
		break;
	}
	return 0;
}
