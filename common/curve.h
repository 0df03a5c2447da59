// CurveZMQ on the fabric: certificates (CZMQ zcert files), client and server socket
// options, the broker's ZAP authenticator (CZMQ zauth) and peer names (docs/security.md).
#ifndef AIGW_CURVE_H
#define AIGW_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

#define CURVE_KEY_TXT 41                // Z85 text of a 32-byte key, with its NUL

//  One certificate: NAME.cert (public) or NAME.cert_secret (both keys).
typedef struct {
    char name[CFG_CERT_NAME_MAX];       // metadata `name`, else the file's stem
    char public_txt[CURVE_KEY_TXT];
    char secret_txt[CURVE_KEY_TXT];     // "" for a public certificate
} curve_cert_t;

//  Load dir/NAME.cert_secret. Refuses a file that group or others may read or write
//  (the message says `chmod 600 FILE`), a missing one (the message says to run
//  `aigw-certs init DIR` or `aigw-certs add NAME`), bad keys, and a public key that
//  does not belong to the secret one. key names the config key in messages
//  ("edge/cert"). Returns 0 / -1 with err set; the secret never appears in err.
int curve_cert_load_secret (curve_cert_t *self, const char *dir, const char *name,
                            const char *key, char *err, size_t errlen);

//  Load a public certificate from a file path (dir/NAME.cert). 0 / -1 with err set.
int curve_cert_load_public (curve_cert_t *self, const char *path, const char *key,
                            char *err, size_t errlen);

//  Zero the secret key held in memory.
void curve_cert_wipe (curve_cert_t *self);

//  ---------------------------------------------------------------------------
//  Client side (edge, worker, tools)

typedef struct {
    bool on;                            // fabric/curve
    curve_cert_t own;                   // our keypair
    char server_txt[CURVE_KEY_TXT];     // the broker's public key
} curve_client_t;

//  Keys for a client of the broker at endpoint (NULL: not checked), using certificate
//  cert (the value of config key `key`, e.g. cfg->edge.cert and "edge/cert") and
//  broker/cert from cfg->fabric.cert_dir. With fabric/curve off, self->on is false,
//  and an endpoint beyond loopback is refused unless fabric/insecure (prompts would
//  cross the network in clear text). Returns 0 / -1 with err set.
int curve_client_load (curve_client_t *self, const cfg_t *cfg, const char *cert,
                       const char *key, const char *endpoint, char *err, size_t errlen);

//  Make sock a CURVE client of the broker; call before zmq_connect. No-op when off.
int curve_client_apply (const curve_client_t *self, void *sock);

void curve_client_wipe (curve_client_t *self);

//  ---------------------------------------------------------------------------
//  Server side (broker)

typedef struct _curve_server_t curve_server_t;

//  What the broker knows about an authenticated peer.
typedef struct {
    char name[CFG_CERT_NAME_MAX];       // its certificate's name
    bool client;                        // listed in fabric/clients
} curve_peer_t;

//  Load broker/cert's keypair, start a CZMQ zauth actor that lets in only the public
//  certificates in cert_dir/authorized, and read their names. zauth lives in CZMQ's
//  context (zsys_init ()): only sockets of that context consult it. Copies the
//  fabric policy. NULL with err set on failure.
curve_server_t *curve_server_new (const cfg_t *cfg, char *err, size_t errlen);

//  Stop zauth and wipe the secret. Safe with NULL, nulls the pointer.
void curve_server_destroy (curve_server_t **self_p);

//  Make sock a CURVE server with the broker's keypair; call before zmq_bind.
int curve_server_apply (const curve_server_t *self, void *sock);

//  A second zmq context, owned by self, whose ZAP handler (a thread of ours, not
//  zauth) lets in only certificates named in fabric/clients: the metrics PUB lives
//  there, so a worker's certificate cannot read the stream. Close its sockets
//  before curve_server_destroy.
void *curve_server_clients_ctx (curve_server_t *self);

//  The peer whose ZAP User-Id (its Z85 public key) is user_id, or NULL if no
//  certificate in the authorized folder has that key. A key zauth accepted but we do
//  not know (a certificate added since) re-reads the folder, at most once a second.
const curve_peer_t *curve_server_peer (curve_server_t *self, const char *user_id);

//  True if fabric/workers lets peer serve model.
bool curve_server_may_serve (const curve_server_t *self, const curve_peer_t *peer,
                             const char *model);

//  ---------------------------------------------------------------------------
//  Policy helpers (pure)

//  Shell-like match where only `*` is special (any run of characters, '/' too).
bool curve_glob (const char *pattern, const char *text);

//  True if name is an item of a comma list ("edge, agent").
bool curve_in_list (const char *list, const char *name);

//  True if fabric/workers gives certificate name a pattern matching model.
bool curve_may_serve (const cfg_fabric_t *fabric, const char *name, const char *model);

//  Protected mode: -1 with err set when endpoint (config key `key`) is not loopback,
//  fabric/curve is off and fabric/insecure is not set.
int curve_check_bind (const cfg_t *cfg, const char *key, const char *endpoint, char *err,
                      size_t errlen);

#endif
