#pragma once
// The generic walk's tables (walker.cc), for other walks over a parse tree.
#include <google/protobuf/descriptor.h>

#include <vector>

#include "pg_query/pg_query.pb.h"

namespace rowguard::sqlrewrite {

// The message-typed fields of a pg_query message type in declaration order (nullptr for a type
// outside pg_query.proto's top level).
const std::vector<const google::protobuf::FieldDescriptor*>* message_fields(const google::protobuf::Descriptor* d);
// The FieldDescriptor of a Node's set member (nullptr when unknown or unset).
const google::protobuf::FieldDescriptor* node_member(const pg_query::Node& n);

}  // namespace rowguard::sqlrewrite
