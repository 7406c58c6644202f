#pragma once
// Built-in type OIDs, named as in PostgreSQL's src/include/catalog/pg_type.dat
// (typname foo -> kFooOid, as the generated FOOOID macros). Header-only, no dependencies.
#include <cstdint>

namespace rowguard::pg {

using Oid = uint32_t;

inline constexpr Oid kInvalidOid = 0;
inline constexpr Oid kBoolOid = 16;
inline constexpr Oid kByteaOid = 17;
inline constexpr Oid kCharOid = 18;
inline constexpr Oid kNameOid = 19;
inline constexpr Oid kInt8Oid = 20;
inline constexpr Oid kInt2Oid = 21;
inline constexpr Oid kInt4Oid = 23;
inline constexpr Oid kTextOid = 25;
inline constexpr Oid kOidOid = 26;
inline constexpr Oid kFloat4Oid = 700;
inline constexpr Oid kFloat8Oid = 701;
inline constexpr Oid kUnknownOid = 705;
inline constexpr Oid kBpcharOid = 1042;
inline constexpr Oid kVarcharOid = 1043;
inline constexpr Oid kDateOid = 1082;
inline constexpr Oid kTimestampOid = 1114;
inline constexpr Oid kTimestamptzOid = 1184;
inline constexpr Oid kNumericOid = 1700;
inline constexpr Oid kUuidOid = 2950;

}  // namespace rowguard::pg
