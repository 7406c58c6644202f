#pragma once
// SQLSTATE codes rowguard sends, named as in PostgreSQL's src/backend/utils/errcodes.txt
// (ERRCODE_FOO_BAR -> kFooBar). Header-only, no dependencies: every module may include it.
// They are string_views because they go on the wire as the 'C' field of an ErrorResponse.
#include <string_view>

namespace rowguard::pg::sqlstate {

// Class 00 - Successful Completion
inline constexpr std::string_view kSuccessfulCompletion = "00000";
// Class 08 - Connection Exception
inline constexpr std::string_view kSqlclientUnableToEstablishSqlconnection = "08001";
inline constexpr std::string_view kConnectionFailure = "08006";
inline constexpr std::string_view kProtocolViolation = "08P01";
// Class 0A - Feature Not Supported
inline constexpr std::string_view kFeatureNotSupported = "0A000";
// Class 22 - Data Exception
inline constexpr std::string_view kInvalidParameterValue = "22023";
// Class 25 - Invalid Transaction State
inline constexpr std::string_view kIdleInTransactionSessionTimeout = "25P03";
// Class 28 - Invalid Authorization Specification
inline constexpr std::string_view kInvalidAuthorizationSpecification = "28000";
inline constexpr std::string_view kInvalidPassword = "28P01";
// Class 42 - Syntax Error or Access Rule Violation
inline constexpr std::string_view kSyntaxError = "42601";
inline constexpr std::string_view kInsufficientPrivilege = "42501";
// Class 53 - Insufficient Resources
inline constexpr std::string_view kTooManyConnections = "53300";
// Class 54 - Program Limit Exceeded
inline constexpr std::string_view kProgramLimitExceeded = "54000";
// Class 55 - Object Not In Prerequisite State
inline constexpr std::string_view kObjectNotInPrerequisiteState = "55000";
// Class 57 - Operator Intervention
inline constexpr std::string_view kAdminShutdown = "57P01";
inline constexpr std::string_view kIdleSessionTimeout = "57P05";
// Class F0 - Configuration File Error
inline constexpr std::string_view kConfigFileError = "F0000";

}  // namespace rowguard::pg::sqlstate
