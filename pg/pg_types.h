#pragma once
// Built-in type OIDs, named as in PostgreSQL's src/include/catalog/pg_type.dat
// (typname foo -> kFooOid, as the generated FOOOID macros; its array _foo -> kFooArrayOid, as
// FOOARRAYOID; a bootstrap catalog's row type by its BKI_ROWTYPE_OID symbol). Header-only, no
// dependencies.
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
inline constexpr Oid kXidOid = 28;
inline constexpr Oid kRelationRelationRowtypeId = 83;  // pg_class's row type (RelationRelation_Rowtype_Id)
inline constexpr Oid kXid8ArrayOid = 271;
inline constexpr Oid kPgClassArrayOid = 273;
inline constexpr Oid kFloat4Oid = 700;
inline constexpr Oid kFloat8Oid = 701;
inline constexpr Oid kUnknownOid = 705;
inline constexpr Oid kXidArrayOid = 1011;
inline constexpr Oid kBpcharOid = 1042;
inline constexpr Oid kVarcharOid = 1043;
inline constexpr Oid kDateOid = 1082;
inline constexpr Oid kTimestampOid = 1114;
inline constexpr Oid kTimestamptzOid = 1184;
inline constexpr Oid kDatabaseRelationRowtypeId = 1248;  // pg_database's row type (DatabaseRelation_Rowtype_Id)
inline constexpr Oid kNumericOid = 1700;
inline constexpr Oid kTxidSnapshotArrayOid = 2949;
inline constexpr Oid kUuidOid = 2950;
inline constexpr Oid kTxidSnapshotOid = 2970;
inline constexpr Oid kPgSnapshotOid = 5038;
inline constexpr Oid kPgSnapshotArrayOid = 5039;
inline constexpr Oid kXid8Oid = 5069;

// OID ranges (src/include/access/transam.h): initdb assigns [FirstGenbkiObjectId,
// FirstNormalObjectId) to the objects it makes (the system views' row types among them); user
// objects start at FirstNormalObjectId.
inline constexpr Oid kFirstGenbkiObjectId = 10000;
inline constexpr Oid kFirstNormalObjectId = 16384;

}  // namespace rowguard::pg
