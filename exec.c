/*
 * exec.c - the exec:COMMAND target (socat's SYSTEM).  Each connection runs
 * /bin/sh -c COMMAND in a process group of its own, with one end of a
 * socketpair as its standard input and output, so to the stream transport
 * the command is an upstream socket like any other: the client's EOF is a
 * shutdown(SHUT_WR) the command reads as the end of its input, and the
 * command's exit (the last writer of the socket gone) is the upstream's
 * EOF.  Its standard error is tproxy's.
 *
 * When a connection ends for any reason, its command's whole process group
 * gets SIGTERM.  Children are reaped in the loop: SIGCHLD writes a byte to
 * a pipe the loop watches (the self-pipe trick), and each known child is
 * waited for by pid, so no other child of tproxy is taken.  A command that
 * fails (a status other than 0, or a signal tproxy did not send) is logged
 * with its status: "cannot run" shows as sh's 127.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "loop.h"
#include "out.h"

#define END_WAIT_MS	500	/* at exit, the time SIGTERM gets */

struct child {
	pid_t		 pid;		/* also its process group */
	uint64_t	 id;		/* the connection's, for the log */
	const void	*owner;		/* its connection; NULL once ended */
	int		 killed;	/* we sent SIGTERM */
	struct child	*next;
};

static struct child	*children;
static int		 sigpipe[2] = { -1, -1 };
static int		 sigslot = -1;

static void
on_sigchld(int sig)
{
	int saved = errno;
	char b = 0;

	(void)sig;
	/* a full pipe means a wake-up is pending already */
	if (write(sigpipe[1], &b, 1) == -1)
		b = 1;
	errno = saved;
}

/* Logs how a child ended, unless it is what we asked for (or success). */
static void
child_report(const struct child *ch, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		diag_limited("tproxy: #%llu command exited with status %d%s",
		    (unsigned long long)ch->id, WEXITSTATUS(status),
		    WEXITSTATUS(status) == 127 ? " (command not found?)" : "");
	else if (WIFSIGNALED(status) && !(ch->killed &&
	    WTERMSIG(status) == SIGTERM))
		diag_limited("tproxy: #%llu command killed by signal %d",
		    (unsigned long long)ch->id, WTERMSIG(status));
}

/* Waits for the children that ended; returns how many are left. */
static size_t
children_reap(void)
{
	struct child **pp = &children, *ch;
	size_t left = 0;
	int status;
	pid_t r;

	while ((ch = *pp) != NULL) {
		r = waitpid(ch->pid, &status, WNOHANG);
		if (r == 0 || (r == -1 && errno == EINTR)) {
			pp = &ch->next;
			left++;
			continue;
		}
		if (r == ch->pid)
			child_report(ch, status);
		*pp = ch->next;
		free(ch);
	}
	return left;
}

static void
sigchld_ready(void *arg, int revents)
{
	char b[64];

	(void)arg;
	(void)revents;
	while (read(sigpipe[0], b, sizeof(b)) > 0)
		;
	(void)children_reap();
}

/* The SIGCHLD pipe, at the first command.  Returns 0, or -1 (errno). */
static int
sigchld_setup(void)
{
	struct sigaction sa;

	if (sigpipe[0] >= 0)
		return 0;
	if (pipe2(sigpipe, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	if (loop_add(sigpipe[0], POLLIN, sigchld_ready, NULL, &sigslot) ==
	    -1) {
		close(sigpipe[0]);
		close(sigpipe[1]);
		sigpipe[0] = sigpipe[1] = -1;
		errno = ENOMEM;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGCHLD, &sa, NULL);
}

/*
 * In the child: its own process group, the signal state of a fresh
 * process (tproxy blocks SIGINT/SIGTERM and ignores SIGPIPE; both would
 * be inherited), fd on stdin and stdout, nothing else of tproxy's open.
 */
static void __attribute__((noreturn))
child_run(int fd, const char *cmd)
{
	sigset_t none;

	(void)setpgid(0, 0);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)signal(SIGPIPE, SIG_DFL);
	(void)signal(SIGCHLD, SIG_DFL);
	if (dup2(fd, STDIN_FILENO) == -1 || dup2(fd, STDOUT_FILENO) == -1)
		_exit(126);
	(void)close_range(3, ~0U, 0);
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
}

int
exec_spawn(const void *owner, uint64_t id, const char *cmd, char *err,
    size_t len)
{
	struct child *ch;
	int sv[2];
	pid_t pid;

	if (sigchld_setup() == -1) {
		snprintf(err, len, "exec: %s", strerror(errno));
		return -1;
	}
	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		snprintf(err, len, "exec: out of memory");
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		snprintf(err, len, "exec: socketpair: %s", strerror(errno));
		free(ch);
		return -1;
	}
	out_flush();		/* nothing of ours is written twice */
	fflush(stderr);
	if ((pid = fork()) == -1) {
		snprintf(err, len, "exec: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		free(ch);
		return -1;
	}
	if (pid == 0)
		child_run(sv[1], cmd);
	(void)setpgid(pid, pid);	/* no race with a kill before exec */
	close(sv[1]);
	(void)fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	ch->pid = pid;
	ch->owner = owner;
	ch->id = id;
	ch->next = children;
	children = ch;
	return sv[0];
}

void
exec_closed(const void *owner)
{
	struct child *ch;

	for (ch = children; ch != NULL; ch = ch->next)
		if (ch->owner == owner) {
			ch->owner = NULL;
			ch->killed = 1;
			(void)kill(-ch->pid, SIGTERM);
		}
}

void
exec_end(void)
{
	struct child *ch;
	uint64_t end = now_ms() + END_WAIT_MS;

	for (ch = children; ch != NULL; ch = ch->next)
		if (!ch->killed) {
			ch->killed = 1;
			(void)kill(-ch->pid, SIGTERM);
		}
	while (children_reap() > 0 && now_ms() < end)
		(void)poll(NULL, 0, 10);
	for (ch = children; ch != NULL; ch = ch->next)
		(void)kill(-ch->pid, SIGKILL);
	while (children != NULL) {
		ch = children;
		children = ch->next;
		(void)waitpid(ch->pid, NULL, 0);
		free(ch);
	}
	if (sigslot >= 0)
		loop_del(&sigslot);
	if (sigpipe[0] >= 0) {
		close(sigpipe[0]);
		close(sigpipe[1]);
		sigpipe[0] = sigpipe[1] = -1;
	}
}
