/*
 * env.h - a running test environment: three mock providers and a warden
 * in front of them, with a generated rules file.  Shared by the suites.
 */
#ifndef IT_ENV_H
#define IT_ENV_H

#include <stdbool.h>
#include <sys/types.h>

#include "tests/integration/harness.h"

#define IT_KEY_T1 "wk-it-tenant-one"	/* routes: p-eu, p-de */
#define IT_KEY_T2 "wk-it-tenant-two"	/* routes: p-us */
/* EU personal and health data; routes: p-us (cheap, not compliant),
 * p-eu, p-de. */
#define IT_KEY_T3 "wk-it-tenant-three"
#define IT_SECRET_EU "sk-it-secret-eu-7f3a"
#define IT_SECRET_DE "sk-it-secret-de-91bc"
#define IT_SECRET_US "sk-it-secret-us-c0de"

struct it_env {
	int port;			/* warden */
	int mock_port[3];		/* eu, de, us */
	pid_t warden;
	pid_t mock[3];
	char config[256];
	char warden_log[256];
	char mock_log[3][256];
	char record[3][256];		/* what each mock received */
	char base[64];			/* http://127.0.0.1:PORT */
};

extern struct it_env it;

/* Start mocks and warden; extra_server is spliced into `server:`. */
void it_env_start(const char *extra_server);
void it_env_stop(void);
/* Start only a warden on the current config (for lifecycle tests). */
pid_t it_warden_start(int port);

/* URL of a path on warden. */
const char *it_url(const char *path);
/* POST a chat to warden as key; headers must hold room for 4 entries. */
void it_chat(const char *key, const char *body, struct it_resp *out);
/* Change a mock's defaults at run time (JSON body for /_mock/config). */
void it_mock_config(int idx, const char *json);
/* The record line of the request whose body holds token, or NULL. */
char *it_record_find(int idx, const char *token);
/* Did mock idx receive a request holding token? */
bool it_record_has(int idx, const char *token);
/* Was the request with token aborted by warden (client_aborted)? */
bool it_record_aborted(int idx, const char *token, int wait_ms);

#endif
