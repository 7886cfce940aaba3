/*
 * fuzz_messages.c - provider answers in the messages format (gateway/fmt_messages.c)
 * for an agent's request, through gateway/agent_answer.c; the checks on
 * what warden would send are tests/fuzz/fmt_fuzz.h's.
 */
#include "tests/fuzz/fmt_fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return ff_run(&gw_format_messages, data, size);
}
