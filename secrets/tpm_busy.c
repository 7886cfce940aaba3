/*
 * tpm_busy.c - a TCTI that sits between ESAPI and the real one and sends
 * a command again, after a short wait, when the TPM answers that it is
 * busy rather than that the command is wrong.
 *
 * Why: without a resource manager (swtpm, /dev/tpm0) every process that
 * talks to the TPM shares its 3 object and 3 session slots, and the swtpm
 * TCTI connects anew for each command, so the gateway's commands and a
 * CLI's (`warden secrets rotate`, `audit purge`) interleave one by one.
 * Each side holds at most two objects (the primary, one loaded key) and
 * two sessions while it works, and flushes them after; two sides at once
 * can need four.  The one that finds the slots full must wait until the
 * other flushes, not fail: a transient TPM state must not turn into a
 * refused request, a credential missing at reload or a lost audit
 * checkpoint.
 *
 * Resending the same bytes is what a resource manager does too (tpm2-abrmd,
 * the kernel's for TPM_RC_RETRY): the TPM refused the command before it
 * took effect and left the sessions' nonces as they were, so the same
 * command authorises again.  Only the warning codes below are retried;
 * every other answer goes to ESAPI unchanged.  The wait is bounded: after
 * SEC_TPM_BUSY_MS of consecutive busy answers the last one goes to ESAPI,
 * and warden reports it (sec_tpm_err: "still full after retrying ...")
 * and refuses what it was doing.
 *
 * The copy of the command kept for resending, and of the answer until
 * ESAPI takes it, lie in locked memory and are wiped after: a key
 * import's duplicate is not parameter-encrypted.
 */
#include "secrets/sec_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tss2/tss2_tcti.h>

#define BUSY_MAGIC 0x7761726462757379ull	/* "wardbusy" */
#define BUSY_FIRST_MS 5			/* first wait; doubles ... */
#define BUSY_STEP_MAX_MS 200		/* ... up to this */

struct busy_tcti {
	TSS2_TCTI_CONTEXT_COMMON_V2 common;	/* first: ESAPI's view */
	TSS2_TCTI_CONTEXT *inner;
	struct sec_buf cmd;		/* the last command, for resending */
	size_t cmdlen;
	struct sec_buf rsp;		/* its answer, until ESAPI takes it */
	size_t rsplen;
	bool have_rsp;
	/* Consecutive busy time so far: reset by any answer that is not
	 * busy, so ESAPI's own resubmissions of TPM_RC_RETRY after a give-up
	 * do not start the wait over. */
	long busy_ms;
	unsigned long retries;		/* resends in this context's life */
	TSS2_RC last_busy;		/* the last busy code seen, or 0 */
	bool gave_up_full;		/* gave up on slots that stayed full */
};

static struct busy_tcti *
busy(TSS2_TCTI_CONTEXT *c)
{
	return (struct busy_tcti *)(void *)c;
}

bool
sec_tpm_rc_busy(TSS2_RC rc)
{
	switch (rc) {
	case TPM2_RC_OBJECT_MEMORY:	/* object slots full */
	case TPM2_RC_SESSION_MEMORY:	/* session slots full */
	case TPM2_RC_MEMORY:		/* out of other memory */
	case TPM2_RC_OBJECT_HANDLES:
	case TPM2_RC_SESSION_HANDLES:
	case TPM2_RC_RETRY:		/* the TPM asks for it */
	case TPM2_RC_YIELDED:
	case TPM2_RC_TESTING:		/* self-test running */
		return true;
	}
	return false;
}

void
sec_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Wipe the kept command and answer. */
static void
forget(struct busy_tcti *b)
{
	wd_wipe(b->cmd.p, b->cmdlen);
	wd_wipe(b->rsp.p, b->rsplen);
	b->cmdlen = b->rsplen = 0;
	b->have_rsp = false;
}

static TSS2_RC
busy_transmit(TSS2_TCTI_CONTEXT *c, size_t size, const uint8_t *command)
{
	struct busy_tcti *b = busy(c);

	forget(b);
	/* Too long to keep: sent once, never resent (ESAPI never builds
	 * one; TPM2_MAX_COMMAND_SIZE is its limit as well). */
	if (size <= b->cmd.len) {
		memcpy(b->cmd.p, command, size);
		b->cmdlen = size;
	} else {
		b->cmdlen = 0;
	}
	return Tss2_Tcti_Transmit(b->inner, size, command);
}

static TSS2_RC
response_code(const uint8_t *r, size_t len)
{
	if (len < 10)
		return TSS2_RC_SUCCESS;
	return (TSS2_RC)r[6] << 24 | (TSS2_RC)r[7] << 16 | (TSS2_RC)r[8] << 8 |
	    r[9];
}

/*
 * Receive the whole answer into b->rsp, resending while it is busy.  The
 * inner TCTI gets a buffer for any answer: ESAPI asks for the size first
 * and then for exactly that many bytes, and a resent command's answer
 * need not have the size of the busy one.
 */
static TSS2_RC
fetch(struct busy_tcti *b, int32_t timeout)
{
	long step = BUSY_FIRST_MS;
	TSS2_RC rc, trc;

	for (;;) {
		b->rsplen = b->rsp.len;
		rc = Tss2_Tcti_Receive(b->inner, &b->rsplen, b->rsp.p, timeout);
		/* A timeout or an I/O error: ESAPI's business. */
		if (rc != TSS2_RC_SUCCESS) {
			b->rsplen = 0;
			return rc;
		}
		trc = response_code(b->rsp.p, b->rsplen);
		if (!sec_tpm_rc_busy(trc) || b->cmdlen == 0) {
			b->busy_ms = 0;
			return TSS2_RC_SUCCESS;
		}
		b->last_busy = trc;
		if (b->busy_ms >= SEC_TPM_BUSY_MS) {
			/* Given up: ESAPI sees it. */
			b->gave_up_full |= trc != TPM2_RC_RETRY &&
			    trc != TPM2_RC_YIELDED && trc != TPM2_RC_TESTING;
			return TSS2_RC_SUCCESS;
		}
		if (step > SEC_TPM_BUSY_MS - b->busy_ms)
			step = SEC_TPM_BUSY_MS - b->busy_ms;
		sec_sleep_ms(step);
		b->busy_ms += step;
		step = step * 2 > BUSY_STEP_MAX_MS ? BUSY_STEP_MAX_MS : step * 2;
		b->retries++;
		if ((rc = Tss2_Tcti_Transmit(b->inner, b->cmdlen, b->cmd.p)) !=
		    TSS2_RC_SUCCESS) {
			b->rsplen = 0;
			return rc;
		}
	}
}

static TSS2_RC
busy_receive(TSS2_TCTI_CONTEXT *c, size_t *size, uint8_t *response,
    int32_t timeout)
{
	struct busy_tcti *b = busy(c);
	TSS2_RC rc;

	if (!b->have_rsp) {
		if ((rc = fetch(b, timeout)) != TSS2_RC_SUCCESS)
			return rc;
		b->have_rsp = true;
	}
	if (response == NULL) {		/* how large is it? */
		*size = b->rsplen;
		return TSS2_RC_SUCCESS;
	}
	if (*size < b->rsplen) {
		*size = b->rsplen;
		return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
	}
	memcpy(response, b->rsp.p, b->rsplen);
	*size = b->rsplen;
	forget(b);
	return TSS2_RC_SUCCESS;
}

static void
busy_finalize(TSS2_TCTI_CONTEXT *c)
{
	(void)c;	/* sec_tpm_busy_free does it: the loader owns inner */
}

static TSS2_RC
busy_cancel(TSS2_TCTI_CONTEXT *c)
{
	return Tss2_Tcti_Cancel(busy(c)->inner);
}

static TSS2_RC
busy_poll_handles(TSS2_TCTI_CONTEXT *c, TSS2_TCTI_POLL_HANDLE *h, size_t *n)
{
	return Tss2_Tcti_GetPollHandles(busy(c)->inner, h, n);
}

static TSS2_RC
busy_set_locality(TSS2_TCTI_CONTEXT *c, uint8_t locality)
{
	return Tss2_Tcti_SetLocality(busy(c)->inner, locality);
}

static TSS2_RC
busy_make_sticky(TSS2_TCTI_CONTEXT *c, TPM2_HANDLE *handle, uint8_t sticky)
{
	return Tss2_Tcti_MakeSticky(busy(c)->inner, handle, sticky);
}

enum wd_err
sec_tpm_busy_wrap(TSS2_TCTI_CONTEXT *inner, TSS2_TCTI_CONTEXT **out,
    char *err, size_t errlen)
{
	struct busy_tcti *b;
	enum wd_err e;

	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		sec_errf(err, errlen, "out of memory");
		return WD_ENOMEM;
	}
	if ((e = sec_buf_alloc(&b->cmd, TPM2_MAX_COMMAND_SIZE, err, errlen)) !=
	    WD_OK || (e = sec_buf_alloc(&b->rsp, TPM2_MAX_RESPONSE_SIZE, err,
	    errlen)) != WD_OK) {
		sec_buf_free(&b->cmd);
		free(b);
		return e;
	}
	b->common.v1.magic = BUSY_MAGIC;
	b->common.v1.version = 2;
	b->common.v1.transmit = busy_transmit;
	b->common.v1.receive = busy_receive;
	b->common.v1.finalize = busy_finalize;
	b->common.v1.cancel = busy_cancel;
	b->common.v1.getPollHandles = busy_poll_handles;
	b->common.v1.setLocality = busy_set_locality;
	b->common.makeSticky = busy_make_sticky;
	b->inner = inner;
	*out = (TSS2_TCTI_CONTEXT *)(void *)b;
	return WD_OK;
}

void
sec_tpm_busy_free(TSS2_TCTI_CONTEXT *c)
{
	struct busy_tcti *b;

	if (c == NULL)
		return;
	b = busy(c);
	sec_buf_free(&b->cmd);	/* wipes */
	sec_buf_free(&b->rsp);
	free(b);
}

unsigned long
sec_tpm_busy_retries(const struct sec_tpm *t)
{
	return t != NULL && t->tcti != NULL ? busy(t->tcti)->retries : 0;
}

TSS2_RC
sec_tpm_busy_last(const struct sec_tpm *t)
{
	return t != NULL && t->tcti != NULL ? busy(t->tcti)->last_busy : 0;
}

bool
sec_tpm_busy_gave_up_full(const struct sec_tpm *t)
{
	return t != NULL && t->tcti != NULL && busy(t->tcti)->gave_up_full;
}
