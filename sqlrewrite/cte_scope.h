#pragma once
// What a statement level brings into scope for the levels below it: the names of its WITH list
// (CTE names shadow unqualified table names, with PostgreSQL's scoping: cte_scope.cc) and its
// relations (FROM items and targets, for attribute notation: expression_names.cc). Both are
// stacks, innermost last; a CteScope guard drops what its level pushed on every way out of it.
#include <cstddef>
#include <string>
#include <vector>

#include "policy/schema_snapshot.h"

namespace rowguard::sqlrewrite {

// A relation of a FROM list or a statement target, by the name the statement uses for it,
// with its columns when the schema snapshot knows them.
struct Relation {
  std::string name;
  const policy::TableInfo* info = nullptr;
  std::string tenant_column;  // the policy's word, also without a snapshot (rowguard's own qual)
};

class CteScope {
 public:
  CteScope(std::vector<std::string>& ctes, std::vector<Relation>& relations)
      : ctes_(ctes), relations_(relations), ctes_mark_(ctes.size()), relations_mark_(relations.size()) {}
  ~CteScope() {
    ctes_.resize(ctes_mark_);
    relations_.resize(relations_mark_);
  }
  CteScope(const CteScope&) = delete;
  CteScope& operator=(const CteScope&) = delete;

 private:
  std::vector<std::string>& ctes_;
  std::vector<Relation>& relations_;
  size_t ctes_mark_;
  size_t relations_mark_;
};

}  // namespace rowguard::sqlrewrite
