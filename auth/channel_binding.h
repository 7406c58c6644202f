#pragma once
// SCRAM channel binding data for "tls-server-end-point" (RFC 5929 4.1): the hash of the
// server's certificate, with the certificate's signature hash, except that MD5 and SHA-1 are
// replaced by SHA-256. nullopt when the certificate's signature algorithm names no single hash
// (e.g. Ed25519); rowguard then does not offer SCRAM-SHA-256-PLUS, as PostgreSQL.
#include <openssl/ssl.h>

#include <optional>
#include <string>

namespace rowguard::auth {

std::optional<std::string> tls_server_end_point(const X509* cert);

// The certificate this side presented on an established TLS connection (server side: ours).
std::optional<std::string> tls_server_end_point(SSL* ssl);

// Client side: the certificate the server presented (rowguard's upstream login).
std::optional<std::string> tls_peer_end_point(SSL* ssl);

}  // namespace rowguard::auth
