/*
 * counter.c - the TPM NV monotonic counter that dates the audit log's
 * checkpoints (issue 11, rollback detection).
 *
 * An NV index of type TPM2_NT_COUNTER holds 8 bytes that only
 * TPM2_NV_Increment changes, by one; nothing makes it go down.  Deleting
 * and redefining the index does not help either: the TPM starts a new
 * counter no lower than the highest value any counter on it ever held
 * (TPM 2.0 Part 1, "NV counters"), and the index's name changes with its
 * attributes, so the log records the name next to each value.
 *
 * The index lives in the owner hierarchy with owner read/write (empty
 * owner auth, as warden's storage primary already assumes) and NO_DA: a
 * counter anyone can bump only makes rollback alarms, never hides one.
 * An index that exists but is not such a counter (an ordinary NV index
 * could be written to any value) is refused.
 */
#include "secrets/sec_int.h"

#include <stdio.h>
#include <string.h>

#define COUNTER_ATTRS (TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | \
	TPMA_NV_NO_DA | \
	((TPMA_NV)TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT))

bool
sec_counter_index_valid(uint32_t index)
{
	/* NV handles 0x01000000..0x01ffffff; owner range 0x01800000..
	 * 0x01bfffff and the TPM/platform ranges below it are all NV. */
	return (index >> 24) == TPM2_HT_NV_INDEX && index < 0x01c00000u;
}

/* An ESYS_TR for index and its public area; *pub freed by the caller
 * (Esys_Free), *tr closed with Esys_TR_Close.  WD_ENOTFOUND: not defined. */
static enum wd_err
open_index(struct sec_tpm *t, uint32_t index, ESYS_TR *tr,
    TPM2B_NV_PUBLIC **pub, TPM2B_NAME **name, char *err, size_t errlen)
{
	char what[64];
	TSS2_RC rc;

	*tr = ESYS_TR_NONE;
	*pub = NULL;
	if (name != NULL)
		*name = NULL;
	snprintf(what, sizeof(what), "TR_FromTPMPublic (NV index 0x%08x)",
	    (unsigned)index);
	rc = Esys_TR_FromTPMPublic(t->esys, index, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, tr);
	if (rc != TSS2_RC_SUCCESS) {
		*tr = ESYS_TR_NONE;
		if ((rc & 0xfff & ~TPM2_RC_N_MASK) == TPM2_RC_HANDLE) {
			sec_errf(err, errlen, "NV index 0x%08x is not defined "
			    "(warden defines it at start)", (unsigned)index);
			return WD_ENOTFOUND;
		}
		return sec_tpm_err(err, errlen, what, rc);
	}
	rc = Esys_NV_ReadPublic(t->esys, *tr, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, pub, name);
	if (rc != TSS2_RC_SUCCESS) {
		Esys_TR_Close(t->esys, tr);
		*tr = ESYS_TR_NONE;
		return sec_tpm_err(err, errlen, "NV_ReadPublic", rc);
	}
	return WD_OK;
}

/* Is pub a counter warden can trust (and read with owner auth)? */
static enum wd_err
check_public(uint32_t index, const TPM2B_NV_PUBLIC *pub, char *err,
    size_t errlen)
{
	TPMA_NV a = pub->nvPublic.attributes;

	if (((a & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT) !=
	    TPM2_NT_COUNTER || pub->nvPublic.dataSize != 8) {
		sec_errf(err, errlen, "NV index 0x%08x exists but is not a "
		    "monotonic counter (attributes 0x%08x): refusing it, since an "
		    "ordinary index can be set to any value; use another "
		    "audit.counter_nv_index", (unsigned)index, (unsigned)a);
		return WD_EINVAL;
	}
	if ((a & TPMA_NV_OWNERREAD) == 0 || (a & TPMA_NV_OWNERWRITE) == 0) {
		sec_errf(err, errlen, "NV index 0x%08x is a counter, but not one "
		    "the owner may read and increment (attributes 0x%08x)",
		    (unsigned)index, (unsigned)a);
		return WD_EINVAL;
	}
	return WD_OK;
}

static void
name_hex(const TPM2B_NAME *n, char out[SEC_COUNTER_NAME_HEX + 1])
{
	size_t len = n->size;

	if (len > SEC_COUNTER_NAME_HEX / 2)
		len = SEC_COUNTER_NAME_HEX / 2;
	wd_hex(n->name, len, out);
}

/* Read the value (8 bytes, big-endian) of an open counter index. */
static enum wd_err
read_value(struct sec_tpm *t, ESYS_TR nv, uint64_t *value, char *err,
    size_t errlen)
{
	TPM2B_MAX_NV_BUFFER *data = NULL;
	TSS2_RC rc;

	rc = Esys_NV_Read(t->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &data);
	if (rc != TSS2_RC_SUCCESS)
		return sec_tpm_err(err, errlen, "NV_Read (counter)", rc);
	if (data->size != 8) {
		Esys_Free(data);
		sec_errf(err, errlen, "the counter read %u bytes, not 8",
		    (unsigned)data->size);
		return WD_EPARSE;
	}
	*value = 0;
	for (int i = 0; i < 8; i++)
		*value = (*value << 8) | data->buffer[i];
	Esys_Free(data);
	return WD_OK;
}

static enum wd_err
increment(struct sec_tpm *t, ESYS_TR nv, char *err, size_t errlen)
{
	TSS2_RC rc = Esys_NV_Increment(t->esys, ESYS_TR_RH_OWNER, nv,
	    ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);

	if (rc == TPM2_RC_NV_RATE) {
		sec_errf(err, errlen, "TPM: NV writes are rate limited right now "
		    "(0x%x in NV_Increment); the counter is bumped at most once a "
		    "minute for this reason", (unsigned)rc);
		return WD_ETPM;
	}
	if (rc != TSS2_RC_SUCCESS)
		return sec_tpm_err(err, errlen, "NV_Increment", rc);
	return WD_OK;
}

/*
 * Open index, check it, optionally bump it, read it.  bump: increment
 * first.  The one path for define's first read, increment and read.
 */
static enum wd_err
use_counter(struct sec_tpm *t, uint32_t index, bool bump,
    struct sec_counter *out, char *err, size_t errlen)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	TPM2B_NAME *name = NULL;
	ESYS_TR nv = ESYS_TR_NONE;
	enum wd_err e;

	memset(out, 0, sizeof(*out));
	out->index = index;
	if ((e = open_index(t, index, &nv, &pub, NULL, err, errlen)) != WD_OK)
		return e;
	if ((e = check_public(index, pub, err, errlen)) != WD_OK)
		goto out;
	if (bump || (pub->nvPublic.attributes & TPMA_NV_WRITTEN) == 0) {
		/* A counter reads only once it was incremented. */
		if ((e = increment(t, nv, err, errlen)) != WD_OK)
			goto out;
	}
	if ((e = read_value(t, nv, &out->value, err, errlen)) != WD_OK)
		goto out;
	/* The name after the write (TPMA_NV_WRITTEN is part of it). */
	if (Esys_TR_GetName(t->esys, nv, &name) != TSS2_RC_SUCCESS) {
		sec_errf(err, errlen, "cannot get the NV index's name");
		e = WD_ETPM;
		goto out;
	}
	name_hex(name, out->name);
	e = WD_OK;
out:
	Esys_Free(name);
	Esys_Free(pub);
	Esys_TR_Close(t->esys, &nv);
	return e;
}

enum wd_err
sec_counter_define(struct sec_tpm *t, uint32_t index, bool *created,
    struct sec_counter *out, char *err, size_t errlen)
{
	TPM2B_AUTH none = { 0 };
	TPM2B_NV_PUBLIC pub = {
		.nvPublic = {
			.nvIndex = index,
			.nameAlg = TPM2_ALG_SHA256,
			.attributes = COUNTER_ATTRS,
			.dataSize = 8,
		},
	};
	ESYS_TR nv = ESYS_TR_NONE;
	char what[64];
	TSS2_RC rc;

	if (created != NULL)
		*created = false;
	if (!sec_counter_index_valid(index)) {
		sec_errf(err, errlen, "0x%08x is not an NV index warden may use "
		    "(0x01000000..0x01bfffff; the owner range is 0x01800000.."
		    "0x01bfffff)", (unsigned)index);
		return WD_EINVAL;
	}
	rc = Esys_NV_DefineSpace(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, &none, &pub, &nv);
	if (rc == TSS2_RC_SUCCESS) {
		Esys_TR_Close(t->esys, &nv);
		if (created != NULL)
			*created = true;
	} else if (rc != TPM2_RC_NV_DEFINED) {
		snprintf(what, sizeof(what), "NV_DefineSpace (index 0x%08x)",
		    (unsigned)index);
		return sec_tpm_err(err, errlen, what, rc);
	}
	/* Defined now or before: it must be our kind of counter.  A new one
	 * is incremented once, so that it can be read. */
	return use_counter(t, index, false, out, err, errlen);
}

enum wd_err
sec_counter_increment(struct sec_tpm *t, uint32_t index,
    struct sec_counter *out, char *err, size_t errlen)
{
	return use_counter(t, index, true, out, err, errlen);
}

enum wd_err
sec_counter_read(struct sec_tpm *t, uint32_t index, struct sec_counter *out,
    char *err, size_t errlen)
{
	return use_counter(t, index, false, out, err, errlen);
}

enum wd_err
sec_counter_parse_index(const char *s, uint32_t *out)
{
	unsigned long long v = 0;
	size_t n = 0;

	if (s == NULL || strncmp(s, "0x", 2) != 0)
		return WD_EPARSE;
	for (s += 2; *s != '\0'; s++, n++) {
		int d = *s >= '0' && *s <= '9' ? *s - '0' :
		    *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 :
		    *s >= 'A' && *s <= 'F' ? *s - 'A' + 10 : -1;

		if (d < 0 || n >= 8)
			return WD_EPARSE;
		v = v * 16 + (unsigned)d;
	}
	if (n == 0 || !sec_counter_index_valid((uint32_t)v))
		return WD_EPARSE;
	*out = (uint32_t)v;
	return WD_OK;
}
