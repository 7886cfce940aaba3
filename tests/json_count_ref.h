/*
 * json_count_ref.h - the JSON value count done byte by byte: what
 * gw_json_count_values (gateway/admit.c) must give however it goes about
 * it.  The unit test (tests/unit/test_http.c) and the fuzz target
 * (tests/fuzz/fuzz_jsoncount.c) hold it to this one reference.
 */
#ifndef JSON_COUNT_REF_H
#define JSON_COUNT_REF_H

#include <stdbool.h>
#include <stddef.h>

/* 1 + the commas and opening brackets outside strings of p[0, n);
 * *in_string and *escape: where the text ends (NULL: not wanted). */
static inline size_t
json_count_ref(const char *p, size_t n, bool *in_string, bool *escape)
{
	size_t count = 1;
	bool in = false, esc = false;

	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (in) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				in = false;
		} else if (ch == '"') {
			in = true;
		} else if (ch == ',' || ch == '[' || ch == '{') {
			count++;
		}
	}
	if (in_string != NULL)
		*in_string = in;
	if (escape != NULL)
		*escape = esc;
	return count;
}

#endif /* JSON_COUNT_REF_H */
