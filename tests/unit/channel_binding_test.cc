// Unit tests for SCRAM channel binding (tls-server-end-point, RFC 5929 / RFC 5802): the hash of
// the server certificate per its signature algorithm, and ScramServer accepting exactly the
// right binding and refusing downgrades and mismatches.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "auth/channel_binding.h"
#include "auth/scram.h"

namespace rowguard::auth {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// A self-signed certificate signed with `md` (nullptr for Ed25519).
std::unique_ptr<X509, X509Free> self_signed(EVP_PKEY* key, const EVP_MD* md) {
  std::unique_ptr<X509, X509Free> x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  EXPECT_GT(X509_sign(x.get(), key, md), 0);
  return x;
}

std::string digest(X509* x, const EVP_MD* md) {
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(x, md, h, &n);
  return std::string(reinterpret_cast<char*>(h), n);
}

TEST(ChannelBinding, HashFollowsTheCertificateSignatureAlgorithm) {
  std::unique_ptr<EVP_PKEY, PkeyFree> ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  ASSERT_TRUE(ec);
  auto sha256 = self_signed(ec.get(), EVP_sha256());
  auto sha384 = self_signed(ec.get(), EVP_sha384());
  auto sha1 = self_signed(ec.get(), EVP_sha1());
  EXPECT_EQ(tls_server_end_point(sha256.get()), digest(sha256.get(), EVP_sha256()));
  EXPECT_EQ(tls_server_end_point(sha384.get()), digest(sha384.get(), EVP_sha384()));
  EXPECT_EQ(tls_server_end_point(sha384.get())->size(), 48u);
  // SHA-1 (and MD5) signed certificates bind with SHA-256 (RFC 5929 4.1).
  EXPECT_EQ(tls_server_end_point(sha1.get()), digest(sha1.get(), EVP_sha256()));
  // Ed25519 signatures name no hash: no binding data (rowguard then offers no -PLUS).
  std::unique_ptr<EVP_PKEY, PkeyFree> ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  auto eddsa = self_signed(ed.get(), nullptr);
  EXPECT_FALSE(tls_server_end_point(eddsa.get()));
  EXPECT_FALSE(tls_server_end_point(static_cast<const X509*>(nullptr)));
}

struct Outcome {
  bool server_first = false;
  bool server_final = false;
  bool client_verified = false;
};

// server bound to `server_data` (plus: SCRAM-SHA-256-PLUS chosen); client binding `client_data`
// ("" = no binding: "n,,").
Outcome run(const std::string& server_data, bool plus, const std::string& client_data) {
  const ScramVerifier verifier = ScramVerifier::from_password("pencil", "salt-salt-salt", 4096);
  ScramServer server(verifier);
  if (!server_data.empty()) server.set_channel_binding(server_data, plus);
  ScramClient client("pencil");
  if (!client_data.empty()) client.set_channel_binding(client_data);
  Outcome o;
  auto sf = server.handle_client_first(client.client_first());
  if (!sf) return o;
  o.server_first = true;
  auto cf = client.handle_server_first(*sf);
  if (!cf) return o;
  auto fin = server.handle_client_final(*cf);
  if (!fin) return o;
  o.server_final = true;
  o.client_verified = client.verify_server_final(*fin);
  return o;
}

TEST(ChannelBinding, ScramPlusWithTheRightBindingSucceeds) {
  const std::string cert_hash(32, '\x5a');
  Outcome o = run(cert_hash, true, cert_hash);
  EXPECT_TRUE(o.server_final);
  EXPECT_TRUE(o.client_verified);
}

TEST(ChannelBinding, ABindingOfAnotherCertificateFails) {
  // A man in the middle terminating TLS with its own certificate: the client binds to that.
  const std::string ours(32, '\x5a');
  std::string theirs = ours;
  theirs[31] = '\x5b';
  Outcome o = run(ours, true, theirs);
  EXPECT_TRUE(o.server_first);
  EXPECT_FALSE(o.server_final);
}

TEST(ChannelBinding, DowngradesAreRefused) {
  const std::string cert_hash(32, '\x11');
  // PLUS chosen but "n,," sent.
  EXPECT_FALSE(run(cert_hash, true, "").server_first);
  // Plain SCRAM chosen but "p=" sent.
  EXPECT_FALSE(run(cert_hash, false, cert_hash).server_first);
  // Binding requested where there is no TLS.
  EXPECT_FALSE(run("", false, cert_hash).server_first);
  // "y,,": the client could bind and thinks the server cannot, but it can (TLS): refused.
  ScramServer server(ScramVerifier::from_password("pencil", "salt-salt-salt", 4096));
  server.set_channel_binding(cert_hash, false);
  EXPECT_FALSE(server.handle_client_first("y,,n=,r=abcdef"));
  // Plain SCRAM on TLS without binding ("n,,") is still fine (channel_binding=disable).
  Outcome plain = run(cert_hash, false, "");
  EXPECT_TRUE(plain.server_final);
  EXPECT_TRUE(plain.client_verified);
  // Another channel binding type is refused.
  ScramServer other(ScramVerifier::from_password("pencil", "salt-salt-salt", 4096));
  other.set_channel_binding(cert_hash, true);
  EXPECT_FALSE(other.handle_client_first("p=tls-unique,,n=,r=abcdef"));
}

}  // namespace
}  // namespace rowguard::auth
