/*
 * test_provider.c - gateway/provider*.c, sigv4.c, eventstream.c: what
 * each provider kind sends (URL, auth headers), SigV4 against AWS's
 * published get-vanilla vectors, and event-stream frames (CRCs,
 * truncation, limits).
 */
#include <check.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/provider.h"
#include "tests/unit/suites.h"

/* AWS Signature Version 4 test suite: get-vanilla and
 * get-vanilla-query-order-key-case (docs.aws.amazon.com, "Signature
 * Version 4 test suite"). */
START_TEST(sigv4_aws_vectors)
{
	static const char secret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	struct gw_sigv4 s = {
		.access_key = "AKIDEXAMPLE",
		.secret = (const unsigned char *)secret,
		.secret_len = sizeof(secret) - 1,
		.region = "us-east-1",
		.service = "service",
		.method = "GET",
		.host = "example.amazonaws.com",
		.canonical_uri = "/",
		.canonical_query = "",
		.amz_date = "20150830T123600Z",
		.payload_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b9"
		    "34ca495991b7852b855",
	};
	char out[512];

	ck_assert_int_eq(gw_sigv4_authorization(&s, out, sizeof(out)), WD_OK);
	ck_assert_str_eq(out, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/"
	    "us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, "
	    "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d"
	    "763fbf31");
	s.canonical_query = "Param1=value1&Param2=value2";
	ck_assert_int_eq(gw_sigv4_authorization(&s, out, sizeof(out)), WD_OK);
	ck_assert_ptr_nonnull(strstr(out, "Signature=b97d918cfa904a5beff61c98"
	    "2a1b6f458b799221646efd99d3219ec94cdf2500"));
	/* Too small an output: an error, not a cut header. */
	ck_assert_int_eq(gw_sigv4_authorization(&s, out, 40), WD_ELIMIT);
}
END_TEST

START_TEST(sigv4_encoding)
{
	char out[64];

	ck_assert(gw_sigv4_encode("/model/a.b-v1:0/converse", 24, true, out,
	    sizeof(out)));
	ck_assert_str_eq(out, "/model/a.b-v1%3A0/converse");
	/* Non-S3 services encode the path twice: the '%' itself. */
	ck_assert(gw_sigv4_encode(out, strlen(out), true, out + 32, 32));
	ck_assert_str_eq(out + 32, "/model/a.b-v1%253A0/converse");
	ck_assert(!gw_sigv4_encode("a b c d", 7, false, out, 8));
	gw_sigv4_date(1440938160, out);
	ck_assert_str_eq(out, "20150830T123600Z");
}
END_TEST

static struct pol_provider
route(const char *kind, const char *url)
{
	struct pol_provider p;

	memset(&p, 0, sizeof(p));
	p.id = (char *)"r";
	p.kind = (char *)kind;
	p.base_url = (char *)url;
	return p;
}

static enum wd_err
prepare(const struct pol_provider *p, const char *cred,
    struct gw_prov_req *out, const char **why)
{
	struct gw_prov_in in = {
		.route = p, .cred = (const unsigned char *)cred,
		.credlen = strlen(cred), .model = "m", .body = "{}",
		.body_len = 2, .now = 1440938160,
	};

	return gw_provider_prepare(&in, out, why);
}

static struct gw_prov_req req;

START_TEST(kind_openai_azure_anthropic)
{
	struct pol_provider p = route("openai", "https://eu.api.openai.com/v1");
	const char *why;

	ck_assert_int_eq(prepare(&p, "sk-1", &req, &why), WD_OK);
	ck_assert_str_eq(req.url, "https://eu.api.openai.com/v1/chat/completions");
	ck_assert_uint_eq(req.nhdrs, 1);
	ck_assert_str_eq(req.hdrs[0], "Authorization: Bearer sk-1");
	gw_prov_req_wipe(&req);
	ck_assert_uint_eq(req.nhdrs, 0);
	ck_assert_ptr_null(memmem(req.buf, sizeof(req.buf), "sk-1", 4));

	p = route("azure", "https://x.openai.azure.com/openai/v1");
	ck_assert_int_eq(prepare(&p, "az-key", &req, &why), WD_OK);
	ck_assert_str_eq(req.url, "https://x.openai.azure.com/openai/v1/chat/"
	    "completions");
	ck_assert_str_eq(req.hdrs[0], "api-key: az-key");
	p = route("azure", "https://x.openai.azure.com");
	p.azure_deployment = (char *)"gpt-4o eu";
	p.api_version = (char *)"2024-10-21";
	ck_assert_int_eq(prepare(&p, "az-key", &req, &why), WD_OK);
	ck_assert_str_eq(req.url, "https://x.openai.azure.com/openai/deployments/"
	    "gpt-4o%20eu/chat/completions?api-version=2024-10-21");

	p = route("anthropic", "https://api.anthropic.com/v1");
	ck_assert_int_eq(prepare(&p, "ak", &req, &why), WD_OK);
	ck_assert_str_eq(req.hdrs[0], "x-api-key: ak");
	ck_assert_str_eq(req.hdrs[1], "anthropic-version: 2023-06-01");
	/* A credential that would split the header is refused. */
	ck_assert_int_eq(prepare(&p, "a\r\nX-Evil: 1", &req, &why), WD_EINVAL);
	ck_assert_ptr_null(strstr(why, "Evil"));
	/* Vertex without a token from the keeper: refused, not waited for. */
	p = route("vertex", "https://x");
	ck_assert_int_eq(prepare(&p, "k", &req, &why), WD_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "access token"));
	p = route("nope", "https://x");
	ck_assert_int_eq(prepare(&p, "k", &req, &why), WD_EUNSUPPORTED);
}
END_TEST

START_TEST(kind_bedrock_sigv4)
{
	struct pol_provider p = route("bedrock",
	    "https://bedrock-runtime.eu-central-1.amazonaws.com/openai/v1");
	static const char secret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	struct gw_sigv4 s = {
		.access_key = "AKIDEXAMPLE", .secret = (const unsigned char *)
		secret, .secret_len = sizeof(secret) - 1, .region =
		"eu-central-1", .service = "bedrock", .method = "POST", .host =
		"bedrock-runtime.eu-central-1.amazonaws.com", .canonical_uri =
		"/openai/v1/chat/completions", .canonical_query = "", .amz_date =
		"20150830T123600Z", .payload_sha256 = "44136fa355b3678a1146ad16f7e"
		"8649e94fb4fc21fe77e8310c060f61caaff8a", .sign_content_sha256 =
		true,
	};
	char want[512], hdr[600];
	const char *why;

	p.region = (char *)"eu-central-1";
	p.service = (char *)"bedrock";
	p.auth = (char *)"sigv4";
	ck_assert_int_eq(prepare(&p, "AKIDEXAMPLE:" "wJalrXUtnFEMI/K7MDENG+"
	    "bPxRfiCYEXAMPLEKEY", &req, &why), WD_OK);
	ck_assert_str_eq(req.url, "https://bedrock-runtime.eu-central-1."
	    "amazonaws.com/openai/v1/chat/completions");
	ck_assert_uint_eq(req.nhdrs, 4);
	ck_assert_str_eq(req.hdrs[0], "Host: bedrock-runtime.eu-central-1."
	    "amazonaws.com");
	ck_assert_str_eq(req.hdrs[1], "X-Amz-Date: 20150830T123600Z");
	/* SHA-256 of "{}" */
	ck_assert_str_eq(req.hdrs[2], "X-Amz-Content-Sha256: 44136fa355b3678a11"
	    "46ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
	ck_assert_int_eq(gw_sigv4_authorization(&s, want, sizeof(want)), WD_OK);
	snprintf(hdr, sizeof(hdr), "Authorization: %s", want);
	ck_assert_str_eq(req.hdrs[3], hdr);
	/* The secret is in no header. */
	for (size_t i = 0; i < req.nhdrs; i++)
		ck_assert_ptr_null(strstr(req.hdrs[i], "EXAMPLEKEY"));
	/* Temporary credentials: the session token is sent and signed. */
	ck_assert_int_eq(prepare(&p, "AKIDEXAMPLE:" "wJalrXUtnFEMI/K7MDENG+"
	    "bPxRfiCYEXAMPLEKEY:FwoGZXIvYXdzEXAMPLEtoken==", &req, &why), WD_OK);
	ck_assert_uint_eq(req.nhdrs, 5);
	ck_assert_str_eq(req.hdrs[3], "X-Amz-Security-Token: FwoGZXIvYXdzEXAMPLE"
	    "token==");
	s.security_token = "FwoGZXIvYXdzEXAMPLEtoken==";
	ck_assert_int_eq(gw_sigv4_authorization(&s, want, sizeof(want)), WD_OK);
	ck_assert_ptr_nonnull(strstr(want, "SignedHeaders=host;x-amz-content-"
	    "sha256;x-amz-date;x-amz-security-token, "));
	snprintf(hdr, sizeof(hdr), "Authorization: %s", want);
	ck_assert_str_eq(req.hdrs[4], hdr);
	ck_assert_int_eq(prepare(&p, "AKID:secret:", &req, &why), WD_EINVAL);
	ck_assert_int_eq(prepare(&p, "no-colon", &req, &why), WD_EINVAL);
	ck_assert_int_eq(prepare(&p, "AKID:", &req, &why), WD_EINVAL);
	p.auth = (char *)"bearer";
	ck_assert_int_eq(prepare(&p, "br-key", &req, &why), WD_OK);
	ck_assert_str_eq(req.hdrs[0], "Authorization: Bearer br-key");
}
END_TEST

START_TEST(eventstream_roundtrip)
{
	const char *names[] = { ":event-type", ":message-type" };
	const char *values[] = { "contentBlockDelta", "event" };
	char frame[256];
	struct gw_es_message m;
	bool complete;
	size_t n, vlen;
	const char *v;

	n = gw_es_encode(names, values, 2, "{\"x\":1}", 7, frame, sizeof(frame));
	ck_assert_uint_gt(n, 16);
	/* Every prefix is incomplete, never an error. */
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(gw_es_decode(frame, i, &m, &complete), WD_OK);
		ck_assert(!complete);
	}
	ck_assert_int_eq(gw_es_decode(frame, n, &m, &complete), WD_OK);
	ck_assert(complete);
	ck_assert_uint_eq(m.frame_len, n);
	ck_assert_uint_eq(m.nheaders, 2);
	v = gw_es_header_str(&m, ":event-type", &vlen);
	ck_assert_uint_eq(vlen, 17);
	ck_assert_int_eq(memcmp(v, "contentBlockDelta", 17), 0);
	ck_assert_uint_eq(m.payload_len, 7);
	ck_assert_int_eq(memcmp(m.payload, "{\"x\":1}", 7), 0);
	/* One flipped payload bit: message CRC fails. */
	frame[n - 6] ^= 1;
	ck_assert_int_eq(gw_es_decode(frame, n, &m, &complete), WD_EPARSE);
	frame[n - 6] ^= 1;
	/* A flipped length: prelude CRC fails before the length is used. */
	frame[3] ^= 0x40;
	ck_assert_int_eq(gw_es_decode(frame, n, &m, &complete), WD_EPARSE);
	frame[3] ^= 0x40;
}
END_TEST

START_TEST(eventstream_limits)
{
	char frame[64];
	struct gw_es_message m;
	bool complete;
	size_t n;

	/* A prelude announcing 2 MiB, with a correct prelude CRC. */
	n = gw_es_encode(NULL, NULL, 0, "", 0, frame, sizeof(frame));
	ck_assert_uint_eq(n, 16);
	frame[0] = 0;
	frame[1] = 0x20;
	frame[2] = 0;
	frame[3] = 0;
	{
		/* recompute the prelude CRC with the encoder's help: encode a
		 * frame whose first 8 bytes match, by hand */
		const unsigned char *p = (const unsigned char *)frame;
		uint32_t crc = ~0u;

		for (int i = 0; i < 8; i++) {
			crc ^= p[i];
			for (int k = 0; k < 8; k++)
				crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
		}
		crc = ~crc;
		frame[8] = (char)(crc >> 24);
		frame[9] = (char)(crc >> 16);
		frame[10] = (char)(crc >> 8);
		frame[11] = (char)crc;
	}
	ck_assert_int_eq(gw_es_decode(frame, 16, &m, &complete), WD_ELIMIT);
}
END_TEST

static size_t
unb64url(const char *in, size_t len, unsigned char *out)
{
	char buf[2048] = "";
	size_t n = 0;
	int r;

	for (size_t i = 0; i < len; i++)
		buf[n++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (n % 4)
		buf[n++] = '=';
	r = EVP_DecodeBlock(out, (unsigned char *)buf, (int)n);
	ck_assert_int_ge(r, 0);
	while (n > 0 && buf[n - 1] == '=') {
		n--;
		r--;
	}
	return (size_t)r;
}

/* The assertion verifies with the key's public half and says what Google
 * checks: alg, iss, aud, scope, iat/exp. */
START_TEST(jwt_rs256_verifies)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem, jwt[4096];
	long pemlen;
	unsigned char part[2048];
	const char *d1, *d2;
	size_t n;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	ck_assert_ptr_nonnull(key);
	ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL,
	    NULL), 1);
	pemlen = BIO_get_mem_data(bio, &pem);
	ck_assert_int_eq(gw_jwt_rs256((unsigned char *)pem, (size_t)pemlen,
	    "sa@p.iam.gserviceaccount.com", "https://oauth2.example/token",
	    "https://www.googleapis.com/auth/cloud-platform", 1700000000, 3600,
	    jwt, sizeof(jwt)), WD_OK);
	d1 = strchr(jwt, '.');
	d2 = strchr(d1 + 1, '.');
	ck_assert_ptr_nonnull(d2);
	n = unb64url(jwt, (size_t)(d1 - jwt), part);
	ck_assert_int_eq(memcmp(part, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", n), 0);
	n = unb64url(d1 + 1, (size_t)(d2 - d1 - 1), part);
	part[n] = 0;
	ck_assert_str_eq((char *)part, "{\"aud\":\"https://oauth2.example/token\","
	    "\"exp\":1700003600,\"iat\":1700000000,\"iss\":\"sa@p.iam."
	    "gserviceaccount.com\",\"scope\":\"https://www.googleapis.com/auth/"
	    "cloud-platform\"}");
	n = unb64url(d2 + 1, strlen(d2 + 1), part);
	ck_assert_uint_eq(n, 256);
	ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
	    key), 1);
	ck_assert_int_eq(EVP_DigestVerify(ctx, part, n, (unsigned char *)jwt,
	    (size_t)(d2 - jwt)), 1);
	/* Not a key: refused; too small a buffer: refused. */
	ck_assert_int_eq(gw_jwt_rs256((const unsigned char *)"nope", 4, "a", "b",
	    "c", 1, 1, jwt, sizeof(jwt)), WD_EINVAL);
	ck_assert_int_eq(gw_jwt_rs256((unsigned char *)pem, (size_t)pemlen, "a",
	    "b", "c", 1, 1, jwt, 100), WD_ELIMIT);
	EVP_MD_CTX_free(ctx);
	BIO_free(bio);
	EVP_PKEY_free(key);
}
END_TEST

START_TEST(converse_request_translated)
{
	static const char chat[] = "{\"model\":\"m\",\"max_tokens\":9,"
	    "\"temperature\":0.5,\"stop\":\"END\",\"messages\":["
	    "{\"role\":\"system\",\"content\":\"be brief\"},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
	    "\"hi\"}]},{\"role\":\"assistant\",\"content\":null,"
	    "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
	    "\"function\":{\"name\":\"search\",\"arguments\":\"{\\\"q\\\":1}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"found\"}],"
	    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
	    "\"search\",\"parameters\":{\"type\":\"object\"}}}]}";
	char *out;
	size_t n;
	const char *why;
	json_t *j, *want;

	ck_assert_int_eq(gw_converse_request(chat, strlen(chat), &out, &n, &why),
	    WD_OK);
	j = json_loadb(out, n, 0, NULL);
	want = json_loads("{\"messages\":[{\"role\":\"user\",\"content\":"
	    "[{\"text\":\"hi\"}]},{\"role\":\"assistant\",\"content\":"
	    "[{\"toolUse\":{\"toolUseId\":\"c1\",\"name\":\"search\","
	    "\"input\":{\"q\":1}}}]},{\"role\":\"user\",\"content\":"
	    "[{\"toolResult\":{\"toolUseId\":\"c1\",\"content\":[{\"text\":"
	    "\"found\"}]}}]}],\"system\":[{\"text\":\"be brief\"}],"
	    "\"inferenceConfig\":{\"maxTokens\":9,\"temperature\":0.5,"
	    "\"stopSequences\":[\"END\"]},\"toolConfig\":{\"tools\":"
	    "[{\"toolSpec\":{\"name\":\"search\",\"description\":\"\","
	    "\"inputSchema\":{\"json\":{\"type\":\"object\"}}}}]}}", 0, NULL);
	ck_assert_ptr_nonnull(want);
	ck_assert_msg(json_equal(j, want), "%s", out);
	json_decref(j);
	json_decref(want);
	free(out);
	/* An image part has no faithful translation here: refused. */
	{
		static const char img[] = "{\"messages\":[{\"role\":\"user\","
		    "\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}";

		ck_assert_int_eq(gw_converse_request(img, sizeof(img) - 1, &out,
		    &n, &why), WD_EINVAL);
	}
	ck_assert_ptr_nonnull(strstr(why, "only text"));
}
END_TEST

START_TEST(converse_stream_to_chunks)
{
	const char *nm[] = { ":event-type", ":content-type", ":message-type" };
	const char *ev[][2] = {
		{ "messageStart", "{\"role\":\"assistant\"}" },
		{ "contentBlockStart", "{\"contentBlockIndex\":1,\"start\":"
		    "{\"toolUse\":{\"toolUseId\":\"t1\",\"name\":\"search\"}}}" },
		{ "contentBlockDelta", "{\"contentBlockIndex\":1,\"delta\":"
		    "{\"toolUse\":{\"input\":\"{}\"}}}" },
		{ "messageStop", "{\"stopReason\":\"tool_use\"}" },
		{ "metadata", "{\"usage\":{\"inputTokens\":1,\"outputTokens\":2,"
		    "\"totalTokens\":3}}" },
	};
	char buf[4096], *out;
	size_t n = 0, outlen;
	struct gw_converse_stream st;
	static const char want[] =
	    "data: {\"id\":\"d1\",\"object\":\"chat.completion.chunk\","
	    "\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,"
	    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
	    "\"finish_reason\":null}]}\n\n"
	    "data: {\"id\":\"d1\",\"object\":\"chat.completion.chunk\","
	    "\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,"
	    "\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"type\":"
	    "\"function\",\"function\":{\"name\":\"search\",\"arguments\":"
	    "\"\"}}]},\"finish_reason\":null}]}\n\n"
	    "data: {\"id\":\"d1\",\"object\":\"chat.completion.chunk\","
	    "\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,"
	    "\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
	    "{\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n"
	    "data: {\"id\":\"d1\",\"object\":\"chat.completion.chunk\","
	    "\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,"
	    "\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
	    "data: {\"id\":\"d1\",\"object\":\"chat.completion.chunk\","
	    "\"created\":0,\"model\":\"m\",\"choices\":[],\"usage\":"
	    "{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}"
	    "\n\ndata: [DONE]\n\n";
	char got[4096];
	size_t glen = 0;

	for (size_t i = 0; i < 5; i++) {
		const char *v[] = { ev[i][0], "application/json", "event" };

		n += gw_es_encode(nm, v, 3, ev[i][1], strlen(ev[i][1]), buf + n,
		    sizeof(buf) - n);
	}
	gw_converse_stream_init(&st, "m", "d1");
	/* Fed three bytes at a time: frames cut anywhere. */
	for (size_t off = 0; off < n; off += 3) {
		ck_assert_int_eq(gw_converse_feed(&st, buf + off, n - off < 3 ?
		    n - off : 3, &out, &outlen), WD_OK);
		if (outlen > 0)
			memcpy(got + glen, out, outlen);
		glen += outlen;
		free(out);
	}
	got[glen] = '\0';
	ck_assert_str_eq(got, want);
	/* Nothing may follow the end. */
	ck_assert_int_eq(gw_converse_feed(&st, buf, 16, &out, &outlen),
	    WD_EPARSE);
	gw_converse_stream_clear(&st);
	/* An exception frame ends the stream as an upstream error. */
	{
		const char *v[] = { "throttlingException", "application/json",
			"exception" };

		n = gw_es_encode(nm, v, 3, "{}", 2, buf, sizeof(buf));
		gw_converse_stream_init(&st, "m", "d1");
		ck_assert_int_eq(gw_converse_feed(&st, buf, n, &out, &outlen),
		    WD_EUPSTREAM);
		ck_assert_ptr_null(out);
		gw_converse_stream_clear(&st);
	}
}
END_TEST

Suite *
suite_provider(void)
{
	Suite *s = suite_create("provider");
	TCase *tc = tcase_create("provider");

	tcase_add_test(tc, sigv4_aws_vectors);
	tcase_add_test(tc, sigv4_encoding);
	tcase_add_test(tc, kind_openai_azure_anthropic);
	tcase_add_test(tc, kind_bedrock_sigv4);
	tcase_add_test(tc, eventstream_roundtrip);
	tcase_add_test(tc, eventstream_limits);
	tcase_add_test(tc, jwt_rs256_verifies);
	tcase_add_test(tc, converse_request_translated);
	tcase_add_test(tc, converse_stream_to_chunks);
	suite_add_tcase(s, tc);
	return s;
}
