// Unit tests for auth/scram: the RFC 7677 SCRAM-SHA-256 vector, client/server round
// trips and failures, pg_authid verifier format, mock verifiers, md5, base64.
#include "auth/scram.h"

#include <gtest/gtest.h>

#include <string>

namespace rowguard::auth {
namespace {

using namespace std::string_literals;

// RFC 7677 section 3.
constexpr std::string_view kRfcPassword = "pencil";
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcSaltB64 = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// StoredKey / ServerKey for "pencil" with the RFC salt and 4096 iterations, computed
// independently with Python:
//   sp = hashlib.pbkdf2_hmac('sha256', b'pencil', base64.b64decode('W22ZaJ0SNY7soEsUEjb6gQ=='), 4096)
//   ck = hmac.new(sp, b'Client Key', 'sha256').digest()
//   base64.b64encode(hashlib.sha256(ck).digest())                       -> StoredKey
//   base64.b64encode(hmac.new(sp, b'Server Key', 'sha256').digest())    -> ServerKey
// (the same script reproduces the RFC's proof and server signature above).
constexpr std::string_view kRfcVerifier =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

// What ScramClient (which sends "n=" with an empty user) must produce against the RFC
// server-first, computed with the same Python script using client-first-bare "n=,r=<nonce>".
constexpr std::string_view kClientEmptyUserFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k=";
constexpr std::string_view kClientEmptyUserServerFinal =
    "v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg=";

std::string rfc_salt() { return base64_decode(kRfcSaltB64).value(); }

ScramVerifier rfc_verifier() { return ScramVerifier::from_password(kRfcPassword, rfc_salt(), 4096); }

// Runs a whole exchange; returns whether the server accepted and the client verified the server.
bool exchange(const ScramVerifier& verifier, const std::string& password) {
  ScramServer server(verifier);
  ScramClient client(password);
  const auto server_first = server.handle_client_first(client.client_first());
  if (!server_first) return false;
  const auto client_final = client.handle_server_first(*server_first);
  if (!client_final) return false;
  const auto server_final = server.handle_client_final(*client_final);
  if (!server_final) return false;
  return client.verify_server_final(*server_final);
}

// ---- RFC 7677 ---------------------------------------------------------------------------------

TEST(Scram, ServerReproducesRfc7677Vector) {
  ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
  const auto server_first = server.handle_client_first(kRfcClientFirst);
  ASSERT_TRUE(server_first);
  EXPECT_EQ(*server_first, kRfcServerFirst);
  const auto server_final = server.handle_client_final(kRfcClientFinal);
  ASSERT_TRUE(server_final) << "the RFC proof did not verify";
  EXPECT_EQ(*server_final, kRfcServerFinal);
}

TEST(Scram, FromPasswordMatchesIndependentKeys) {
  const ScramVerifier v = rfc_verifier();
  EXPECT_EQ(v.to_string(), kRfcVerifier);
  EXPECT_EQ(v.iterations, 4096);
  EXPECT_EQ(v.stored_key.size(), 32u);
  EXPECT_EQ(v.server_key.size(), 32u);
}

TEST(Scram, ParsedVerifierRunsRfcExchange) {
  const auto v = ScramVerifier::parse(kRfcVerifier);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->iterations, 4096);
  EXPECT_EQ(v->salt, rfc_salt());
  ScramServer server(*v, std::string(kRfcServerNonce));
  ASSERT_EQ(server.handle_client_first(kRfcClientFirst), std::string(kRfcServerFirst));
  EXPECT_EQ(server.handle_client_final(kRfcClientFinal), std::string(kRfcServerFinal));
}

TEST(Scram, ClientMatchesIndependentComputation) {
  ScramClient client{std::string(kRfcPassword), std::string(kRfcClientNonce)};
  EXPECT_EQ(client.client_first(), "n,,n=,r=rOprNGfwEbeRWgbNEkqO");
  const auto client_final = client.handle_server_first(kRfcServerFirst);
  ASSERT_TRUE(client_final);
  EXPECT_EQ(*client_final, kClientEmptyUserFinal);
  EXPECT_TRUE(client.verify_server_final(kClientEmptyUserServerFinal));
  EXPECT_FALSE(client.verify_server_final(kRfcServerFinal));  // signature for another exchange
}

TEST(Scram, ClientAgainstServerWithRfcNonces) {
  ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
  ScramClient client{std::string(kRfcPassword), std::string(kRfcClientNonce)};
  const auto server_first = server.handle_client_first(client.client_first());
  ASSERT_TRUE(server_first);
  EXPECT_EQ(*server_first, kRfcServerFirst);
  const auto client_final = client.handle_server_first(*server_first);
  ASSERT_TRUE(client_final);
  const auto server_final = server.handle_client_final(*client_final);
  ASSERT_TRUE(server_final);
  EXPECT_EQ(*server_final, kClientEmptyUserServerFinal);
  EXPECT_TRUE(client.verify_server_final(*server_final));
}

// ---- round trips and failures -------------------------------------------------------------

TEST(Scram, RandomNonceRoundTrip) {
  const ScramVerifier v = ScramVerifier::from_password("s3cr3t pass", random_bytes(16));
  EXPECT_TRUE(exchange(v, "s3cr3t pass"));
}

TEST(Scram, NoncesAreRandomBase64Of18Bytes) {
  ScramClient a("x"), b("x");
  const std::string fa = a.client_first(), fb = b.client_first();
  ASSERT_TRUE(fa.starts_with("n,,n=,r="));
  const std::string nonce = fa.substr(8);
  EXPECT_EQ(nonce.size(), 24u);
  EXPECT_EQ(base64_decode(nonce).value_or("").size(), 18u);
  EXPECT_NE(fa, fb);

  ScramServer server(rfc_verifier());
  const auto sf = server.handle_client_first(kRfcClientFirst);
  ASSERT_TRUE(sf);
  const std::string prefix = "r=" + std::string(kRfcClientNonce);
  ASSERT_TRUE(sf->starts_with(prefix));
  const std::string server_nonce = sf->substr(prefix.size(), sf->find(',') - prefix.size());
  EXPECT_EQ(base64_decode(server_nonce).value_or("").size(), 18u);
}

TEST(Scram, WrongPasswordFails) {
  EXPECT_FALSE(exchange(rfc_verifier(), "pencil2"));
  EXPECT_FALSE(exchange(rfc_verifier(), ""));
}

TEST(Scram, TamperedProofFails) {
  ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
  ASSERT_TRUE(server.handle_client_first(kRfcClientFirst));
  std::string tampered(kRfcClientFinal);
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(server.handle_client_final(tampered));
  // The exchange is over: even the right proof is refused now.
  EXPECT_FALSE(server.handle_client_final(kRfcClientFinal));
}

TEST(Scram, ProofOfWrongLengthFails) {
  ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
  ASSERT_TRUE(server.handle_client_first(kRfcClientFirst));
  EXPECT_FALSE(server.handle_client_final(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA"));
}

TEST(Scram, ServerRejectsNonceMismatch) {
  ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
  ASSERT_TRUE(server.handle_client_first(kRfcClientFirst));
  EXPECT_FALSE(server.handle_client_final(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
}

TEST(Scram, ServerRejectsWrongChannelBinding) {
  ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
  ASSERT_TRUE(server.handle_client_first(kRfcClientFirst));
  EXPECT_FALSE(server.handle_client_final(
      "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
}

TEST(Scram, ServerYFlagRequiresMatchingBinding) {
  const ScramVerifier v = rfc_verifier();
  ScramServer server(v);
  ScramClient client{std::string(kRfcPassword)};
  // Drive the server with a "y,," header by hand: the client class always sends "n,,".
  const std::string first = client.client_first();
  const auto sf = server.handle_client_first("y,," + first.substr(3));
  ASSERT_TRUE(sf);
  const auto cf = client.handle_server_first(*sf);
  ASSERT_TRUE(cf);
  // The client's proof covers "c=biws"; with "y,," the server expects "c=eSws", so it fails.
  EXPECT_FALSE(server.handle_client_final(*cf));
}

TEST(Scram, ClientRejectsNonceMismatch) {
  ScramClient client{std::string(kRfcPassword), std::string(kRfcClientNonce)};
  client.client_first();
  EXPECT_FALSE(client.handle_server_first("r=XOprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
  // The server must add its own part.
  EXPECT_FALSE(client.handle_server_first("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
}

TEST(Scram, ClientRejectsMalformedServerFirst) {
  ScramClient client{std::string(kRfcPassword), std::string(kRfcClientNonce)};
  EXPECT_FALSE(client.handle_server_first(kRfcServerFirst));  // client_first() not sent yet
  client.client_first();
  const std::string r = "r=rOprNGfwEbeRWgbNEkqOsrv";
  for (const std::string& bad : {
           r + ",s=W22ZaJ0SNY7soEsUEjb6gQ==",                  // no i
           r + ",i=4096",                                       // no s
           "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"s,                // no r
           r + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",              // i < 1
           r + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
           r + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001",       // absurd
           r + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999",
           r + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x",
           r + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
           r + ",s=,i=4096",                                    // empty salt
           r + ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",             // bad base64
           r + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=ext",      // trailing garbage
           "m=ext," + r + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", // mandatory extension
           "e=other-error"s,
           ""s,
       }) {
    EXPECT_FALSE(client.handle_server_first(bad)) << bad;
  }
}

TEST(Scram, ClientRejectsBadServerFinal) {
  ScramClient client{std::string(kRfcPassword), std::string(kRfcClientNonce)};
  EXPECT_FALSE(client.verify_server_final(kClientEmptyUserServerFinal));  // nothing computed yet
  client.client_first();
  ASSERT_TRUE(client.handle_server_first(kRfcServerFirst));
  EXPECT_FALSE(client.verify_server_final("e=invalid-proof"));
  EXPECT_FALSE(client.verify_server_final(""));
  EXPECT_FALSE(client.verify_server_final("v="));
  EXPECT_FALSE(client.verify_server_final("v=not base64!"));
  EXPECT_FALSE(client.verify_server_final(std::string(kClientEmptyUserServerFinal) + ",x=y"));
  EXPECT_TRUE(client.verify_server_final(kClientEmptyUserServerFinal));
}

TEST(Scram, ServerRejectsMalformedClientFirst) {
  for (std::string_view bad : {
           "p=tls-server-end-point,,n=,r=abc",  // channel binding requested
           "n,a=admin,n=,r=abc",                // authzid
           "n,,m=ext,n=,r=abc",                 // mandatory extension
           "n,,n=,r=",                          // empty nonce
           "n,,n=",                             // no nonce
           "n,,r=abc",                          // no user attribute
           "n,,n=,r=ab,c",                      // ',' splits into a bad attribute
           "x,,n=,r=abc",
           "n,n=,r=abc",
           "",
       }) {
    ScramServer server(rfc_verifier());
    EXPECT_FALSE(server.handle_client_first(bad)) << bad;
  }
  ScramServer server(rfc_verifier());
  EXPECT_FALSE(server.handle_client_first(std::string("n,,n=,r=a\0b", 11)));
}

TEST(Scram, ServerIgnoresUserNameAndOptionalExtensions) {
  ScramServer a(rfc_verifier(), "srv");
  EXPECT_EQ(a.handle_client_first("n,,n=anybody,r=abc,x=ext"),
            "r=abcsrv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
}

TEST(Scram, ServerRejectsMalformedClientFinal) {
  const std::string nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  const std::string proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  for (const std::string& bad : {
           "c=biws,r=" + nonce,                          // no proof
           "r=" + nonce + "," + proof,                   // no channel binding
           "c=biws," + proof,                            // no nonce
           "c=biws,r=" + nonce + "," + proof + ",x=y",   // proof not last
           "c=biws,r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",  // bad b64
           ""s,
       }) {
    ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
    ASSERT_TRUE(server.handle_client_first(kRfcClientFirst));
    EXPECT_FALSE(server.handle_client_final(bad)) << bad;
  }
}

TEST(Scram, ServerOutOfOrderCalls) {
  ScramServer server(rfc_verifier(), std::string(kRfcServerNonce));
  EXPECT_FALSE(server.handle_client_final(kRfcClientFinal));
  ScramServer twice(rfc_verifier(), std::string(kRfcServerNonce));
  ASSERT_TRUE(twice.handle_client_first(kRfcClientFirst));
  EXPECT_FALSE(twice.handle_client_first(kRfcClientFirst));
}

// ---- verifiers --------------------------------------------------------------------------------

TEST(ScramVerifierTest, ToStringParseRoundTrip) {
  const ScramVerifier v = ScramVerifier::from_password("hunter2", random_bytes(16), 10000);
  const auto p = ScramVerifier::parse(v.to_string());
  ASSERT_TRUE(p);
  EXPECT_EQ(p->iterations, 10000);
  EXPECT_EQ(p->salt, v.salt);
  EXPECT_EQ(p->stored_key, v.stored_key);
  EXPECT_EQ(p->server_key, v.server_key);
  EXPECT_EQ(p->to_string(), v.to_string());
  EXPECT_TRUE(exchange(*p, "hunter2"));
}

TEST(ScramVerifierTest, ParseRejectsMalformed) {
  const std::string k = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=";
  for (const std::string& bad : {
           "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + k + ":" + k,
           "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$" + k + ":" + k,
           "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$" + k + ":" + k,
           "SCRAM-SHA-256$x:W22ZaJ0SNY7soEsUEjb6gQ==$" + k + ":" + k,
           "SCRAM-SHA-256$4096:$" + k + ":" + k,                          // empty salt
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=$" + k + ":" + k,   // bad b64
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + k,            // no ServerKey
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + k + ":AAAA",  // short key
           "SCRAM-SHA-256$4096W22ZaJ0SNY7soEsUEjb6gQ==$" + k + ":" + k,
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + k + ":" + k + "$",
           "md5abcdef0123456789abcdef0123456789"s,
           ""s,
       }) {
    EXPECT_FALSE(ScramVerifier::parse(bad)) << bad;
  }
}

TEST(ScramVerifierTest, MockNeverAccepts) {
  const ScramVerifier m = mock_verifier("ghost");
  EXPECT_EQ(m.salt.size(), 16u);
  EXPECT_EQ(m.stored_key.size(), 32u);
  EXPECT_EQ(m.server_key.size(), 32u);
  // Deterministic per user within the process, different between users.
  const ScramVerifier again = mock_verifier("ghost");
  EXPECT_EQ(again.to_string(), m.to_string());
  EXPECT_NE(mock_verifier("ghost2").salt, m.salt);
  // Looks like a real verifier.
  ASSERT_TRUE(ScramVerifier::parse(m.to_string()));
  for (const std::string& pw : {""s, "ghost"s, "pencil"s, "postgres"s}) {
    EXPECT_FALSE(exchange(m, pw)) << pw;
  }
  // Even the RFC exchange, which is valid for a real verifier with this salt, fails.
  ScramServer server(m, std::string(kRfcServerNonce));
  ASSERT_TRUE(server.handle_client_first(kRfcClientFirst));
  EXPECT_FALSE(server.handle_client_final(kRfcClientFinal));
}

// ---- md5, base64, helpers -------------------------------------------------------------------

TEST(ScramHelpers, Md5PasswordKnownValue) {
  // Computed independently with Python:
  //   h = lambda b: hashlib.md5(b).hexdigest()
  //   'md5' + h(h(b'postgres' + b'postgres').encode() + b'\x01\x02\x03\x04')
  EXPECT_EQ(md5_password("postgres", "postgres", "\x01\x02\x03\x04"),
            "md568be9ed08db75f318087ab337aaea044");
  const std::string v = md5_password("u", "p", "abcd");
  EXPECT_EQ(v.size(), 35u);
  EXPECT_TRUE(v.starts_with("md5"));
  EXPECT_NE(v, md5_password("u", "p", "abce"));
}

TEST(ScramHelpers, Base64RoundTrip) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("n,,"), "biws");
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("Zg=="), "f");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
  for (size_t n = 0; n < 300; ++n) {
    const std::string raw = random_bytes(n);
    EXPECT_EQ(base64_decode(base64_encode(raw)), raw) << n;
  }
  // Larger than one internal chunk.
  const std::string big = random_bytes(200'000);
  EXPECT_EQ(base64_decode(base64_encode(big)), big);
  const std::string zeros(4, '\0');
  EXPECT_EQ(base64_decode(base64_encode(zeros)), zeros);
}

TEST(ScramHelpers, Base64RejectsInvalid) {
  for (std::string_view bad : {"Zg=", "Zg", "Z", "Zg===", "====", "Z===", "Zm9v!A==", "Zm 9v",
                               " Zm9v", "Zm9v\n", "Zg==Zg==", "Z=g=", "Zh==", "Zm9=", "-_-_"}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
  EXPECT_FALSE(base64_decode(std::string("Zm\0v", 4)));
}

TEST(ScramHelpers, SecureEqual) {
  EXPECT_TRUE(secure_equal("", ""));
  EXPECT_TRUE(secure_equal("abc", "abc"));
  EXPECT_FALSE(secure_equal("abc", "abd"));
  EXPECT_FALSE(secure_equal("abc", "ab"));
  EXPECT_FALSE(secure_equal("", "a"));
}

TEST(ScramHelpers, RandomBytes) {
  EXPECT_EQ(random_bytes(0), "");
  EXPECT_EQ(random_bytes(18).size(), 18u);
  EXPECT_NE(random_bytes(32), random_bytes(32));
}

}  // namespace
}  // namespace rowguard::auth
