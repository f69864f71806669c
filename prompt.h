/*
 * prompt.h - the terminal prompt for chunks that inspect holds: a hexdump
 * and one key (f d e a F) on the controlling terminal, never on stdout.
 */
#ifndef PROMPT_H
#define PROMPT_H

/* When standard input is a terminal, prompts there for held chunks. */
void	 prompt_init(void);
/* Restores the terminal's mode and stops prompting. */
void	 prompt_close(void);

#endif /* PROMPT_H */
