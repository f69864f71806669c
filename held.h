/*
 * held.h - the chunks that inspect holds, with the ids people decide them
 * by (the terminal prompt, the control socket).  The filter registers a
 * chunk and reads the decision; a decider decides and kicks the
 * connection, whose chain then asks the filter again.
 */
#ifndef HELD_H
#define HELD_H

#include <stddef.h>
#include <stdint.h>

#include "tap.h"

enum held_how {
	H_UNDECIDED = 0,
	H_FORWARD,			/* as it is, or edited (bytes) */
	H_DROP,
	H_ANSWER,			/* bytes go back to the sender */
};

enum held_edit {
	EDIT_AUTO = 0,			/* raw when text, else hex */
	EDIT_RAW,
	EDIT_HEX,
};

struct held_chunk {
	uint64_t	 id;
	uint64_t	 conn;
	enum dir	 dir;
	enum held_edit	 edit;
	uint8_t		*p;		/* a copy of the chunk */
	size_t		 n;
	enum held_how	 how;
	uint8_t		*np;		/* other bytes to send, or NULL */
	size_t		 nn;
	struct held_chunk *next;
};

/* Registers a copy of p[0..n); returns its id, or 0 (no memory). */
uint64_t held_add(uint64_t conn, enum dir d, enum held_edit edit,
	    const uint8_t *p, size_t n) __attribute__((nonnull));
struct held_chunk *held_find(uint64_t id);
/* The oldest held chunk still undecided, or NULL. */
struct held_chunk *held_next(void);
/* Every held chunk, oldest first. */
struct held_chunk *held_list(void);
void	 held_remove(uint64_t id);
/*
 * Decides chunk id (p[0..n): other bytes, or NULL for the chunk's own) and
 * lets its connection go on.  Returns 0, or -1 with a message in err.
 */
int	 held_decide(uint64_t id, enum held_how how, const uint8_t *p,
	    size_t n, char *err, size_t len);
/* "F": every later chunk of conn goes on undecided. */
void	 held_pass_all(uint64_t conn);
int	 held_passes(uint64_t conn);
void	 held_conn_gone(uint64_t conn);
/* cb runs after a chunk is added or removed (the prompt follows). */
void	 held_on_change(void (*cb)(void));
void	 held_free_all(void);

#endif /* HELD_H */
