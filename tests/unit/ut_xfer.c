/*
 * ut_xfer.c - the three callbacks of a provider transfer (gw_up_start)
 * for the suites that drive one: they keep the status and the end.
 */
#include <event2/event.h>

#include "gateway/gw_int.h"
#include "tests/unit/suites.h"

void
ut_xfer_head(void *arg, int status, const char *ctype)
{
	(void)ctype;
	((struct ut_xfer *)arg)->status = status;
}

size_t
ut_xfer_data(void *arg, const char *data, size_t len)
{
	(void)arg;
	(void)data;
	return len;
}

void
ut_xfer_done(void *arg, enum wd_err err, const char *detail)
{
	struct ut_xfer *x = arg;

	(void)detail;
	x->err = err;
	x->done = true;
	event_base_loopbreak(x->evb);
}
