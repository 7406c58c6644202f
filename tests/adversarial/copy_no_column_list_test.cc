// COPY t FROM STDIN without a column list (issue 17 item 2): rowguard writes the column list out
// from the schema snapshot (every column but generated ones, in order, as PostgreSQL reads them)
// and checks the tenant column's field of every row. A row of another tenant is refused and
// nothing of the COPY is stored; the tenant's own rows are stored as PostgreSQL would store them.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <string>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

TEST(CopyWithoutColumnList, OwnRowsAreStoredOtherTenantsRowsRefused) {
  auto su = Env::get().direct_super();
  su->exec("DELETE FROM customers WHERE id BETWEEN 9700 AND 9799");
  auto t1 = Env::get().tenant(1);
  // customers is (id, tenant_id, name): the tenant column is the second field.
  EXPECT_EQ(copy_in(*t1, "COPY customers FROM STDIN", "9701\t1\tcopy-own\n9702\t1\tcopy-own\n"), "ok");
  std::string other = copy_in(*t1, "COPY customers FROM STDIN", "9703\t1\tcopy-own\n9704\t2\tcopy-other\n");
  EXPECT_EQ(other.rfind("42501", 0), 0u) << other;
  std::string csv = copy_in(*t1, "COPY customers FROM STDIN WITH (FORMAT csv, HEADER true)",
                            "id,tenant_id,name\n9705,1,copy-csv\n9706,2,copy-other\n");
  EXPECT_EQ(csv.rfind("42501", 0), 0u) << csv;
  EXPECT_EQ(copy_in(*t1, "COPY customers FROM STDIN WITH (FORMAT csv)", "9707,1,copy-csv\n"), "ok");
  QueryResult rows = su->exec("SELECT id, tenant_id FROM customers WHERE id BETWEEN 9700 AND 9799 ORDER BY id");
  ASSERT_TRUE(rows.ok) << rows.message;
  ASSERT_EQ(rows.rows.size(), 3u) << rows.everything();
  EXPECT_EQ(*rows.rows[0][0], "9701");
  EXPECT_EQ(*rows.rows[1][0], "9702");
  EXPECT_EQ(*rows.rows[2][0], "9707");
  for (const auto& r : rows.rows) EXPECT_EQ(*r[1], "1");
  EXPECT_TRUE(t1->alive());
  su->exec("DELETE FROM customers WHERE id BETWEEN 9700 AND 9799");
}

}  // namespace
}  // namespace rowguard::testing::adversarial
