// tls-server-end-point channel binding data (see channel_binding.h). OpenSSL only.
#include "auth/channel_binding.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

namespace rowguard::auth {

std::optional<std::string> tls_server_end_point(const X509* cert) {
  if (cert == nullptr) return std::nullopt;
  int md_nid = NID_undef;
  int pk_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid) != 1) return std::nullopt;
  if (md_nid == NID_md5 || md_nid == NID_sha1) md_nid = NID_sha256;
  const EVP_MD* md = EVP_get_digestbynid(md_nid);
  if (md == nullptr) return std::nullopt;
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, md, hash, &len) != 1) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(hash), len);
}

std::optional<std::string> tls_server_end_point(SSL* ssl) {
  if (ssl == nullptr) return std::nullopt;
  return tls_server_end_point(SSL_get_certificate(ssl));  // not owned: no free
}

std::optional<std::string> tls_peer_end_point(SSL* ssl) {
  if (ssl == nullptr) return std::nullopt;
  X509* cert = SSL_get1_peer_certificate(ssl);  // a reference: freed below
  std::optional<std::string> data = tls_server_end_point(cert);
  X509_free(cert);
  return data;
}

}  // namespace rowguard::auth
