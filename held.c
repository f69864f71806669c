/*
 * held.c - the registry of chunks held by inspect.  Ids count from 1 and
 * are never reused.  The list is short (one undecided chunk at most per
 * connection and direction), so a walk finds an id.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "conn.h"
#include "held.h"

struct passer {
	uint64_t	 conn;
	struct passer	*next;
};

static struct held_chunk *head, **tailp = &head;
static struct passer	*passers;
static uint64_t		 next_id = 1;
static void		(*on_change)(void);

static void
changed(void)
{
	if (on_change != NULL)
		on_change();
}

void
held_on_change(void (*cb)(void))
{
	on_change = cb;
}

uint64_t
held_add(uint64_t conn, enum dir d, enum held_edit edit, const uint8_t *p,
    size_t n)
{
	struct held_chunk *h = calloc(1, sizeof(*h));

	if (h == NULL || (h->p = malloc(n ? n : 1)) == NULL) {
		free(h);
		return 0;
	}
	memcpy(h->p, p, n);
	h->n = n;
	h->id = next_id++;
	h->conn = conn;
	h->dir = d;
	h->edit = edit;
	*tailp = h;
	tailp = &h->next;
	changed();
	return h->id;
}

struct held_chunk *
held_find(uint64_t id)
{
	struct held_chunk *h;

	for (h = head; h; h = h->next)
		if (h->id == id)
			return h;
	return NULL;
}

struct held_chunk *
held_next(void)
{
	struct held_chunk *h;

	for (h = head; h; h = h->next)
		if (h->how == H_UNDECIDED)
			return h;
	return NULL;
}

struct held_chunk *
held_list(void)
{
	return head;
}

void
held_remove(uint64_t id)
{
	struct held_chunk **pp, *h;

	for (pp = &head; (h = *pp) != NULL; pp = &h->next)
		if (h->id == id)
			break;
	if (h == NULL)
		return;
	*pp = h->next;
	if (tailp == &h->next)
		tailp = pp;
	free(h->p);
	free(h->np);
	free(h);
	changed();
}

int
held_decide(uint64_t id, enum held_how how, const uint8_t *p, size_t n,
    char *err, size_t len)
{
	struct held_chunk *h = held_find(id);
	struct conn *c;

	if (h == NULL || h->how != H_UNDECIDED) {
		snprintf(err, len, "no held chunk %llu", (unsigned long long)id);
		return -1;
	}
	if (p != NULL) {
		if ((h->np = malloc(n ? n : 1)) == NULL) {
			snprintf(err, len, "out of memory");
			return -1;
		}
		memcpy(h->np, p, n);
		h->nn = n;
	}
	h->how = how;
	if ((c = conn_find(h->conn)) != NULL)
		conn_kick(c);
	changed();
	return 0;
}

void
held_pass_all(uint64_t conn)
{
	struct passer *p;

	if (held_passes(conn) || (p = malloc(sizeof(*p))) == NULL)
		return;
	p->conn = conn;
	p->next = passers;
	passers = p;
}

int
held_passes(uint64_t conn)
{
	struct passer *p;

	for (p = passers; p; p = p->next)
		if (p->conn == conn)
			return 1;
	return 0;
}

void
held_conn_gone(uint64_t conn)
{
	struct passer **pp, *p;

	for (pp = &passers; (p = *pp) != NULL; pp = &p->next)
		if (p->conn == conn) {
			*pp = p->next;
			free(p);
			return;
		}
}

void
held_free_all(void)
{
	while (head != NULL)
		held_remove(head->id);
	while (passers != NULL)
		held_conn_gone(passers->conn);
}
