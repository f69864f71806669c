/*
 * accept.c - taking new clients from stream listeners, within --max-conns
 * and the descriptor limit: a full table pauses every listener until a
 * connection ends; EMFILE and its kin pause them for a moment, with one
 * message every ten seconds instead of a spin.
 */
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "accept.h"
#include "conn.h"
#include "loop.h"
#include "out.h"
#include "stream.h"

#define EMFILE_PAUSE_MS		100
#define ACCEPTS_PER_TURN	64

static struct timer	 emfile_timer;
static int		 emfile_paused, full_paused;

static void
listeners_update(void)
{
	size_t i;
	int paused = emfile_paused || full_paused;

	for (i = 0; i < nroutes; i++)
		loop_set(routes[i].lslot, paused ? 0 : POLLIN);
}

static void
emfile_resume(struct timer *t)
{
	(void)t;
	emfile_paused = 0;
	listeners_update();
}

/* A connection ended: listeners paused by --max-conns may go on. */
static void
room_again(void)
{
	if (full_paused && conn_room()) {
		full_paused = 0;
		listeners_update();
	}
}

/* Backs off a full descriptor table instead of spinning on it. */
static void
emfile_pause(int err)
{
	static uint64_t warned;

	if (warned == 0 || now_ms() - warned >= 10000) {
		diag_err("tproxy: accept: %s; pausing accepts", strerror(err));
		warned = now_ms();
	}
	emfile_paused = 1;
	listeners_update();
	timer_arm(&emfile_timer, EMFILE_PAUSE_MS);
}

void
accept_ready(struct route *r)
{
	struct sockname peer;
	int i, fd;

	emfile_timer.cb = emfile_resume;
	conn_on_close = room_again;
	for (i = 0; i < ACCEPTS_PER_TURN; i++) {
		if (!conn_room()) {
			full_paused = 1;
			listeners_update();
			return;
		}
		peer.len = sizeof(peer.ss);
		fd = accept4(r->lfd, (struct sockaddr *)&peer.ss, &peer.len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				emfile_pause(errno);
			return;
		}
		(void)stream_accept(r, fd, &peer);
	}
}
