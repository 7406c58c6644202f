#!/usr/bin/python3
"""Differential oracle for rowguard's tenant isolation (issue 4, item 5).

Two kinds of databases on one PostgreSQL server:
  oracle_full    every tenant's rows (rowguard's upstream_database);
  oracle_ref_T   ONLY tenant T's rows (same schema, same global tables), for T in 1, 2, 3; there
                 the tenant column defaults to T (what rowguard fills into an INSERT).
Tenants share ids (accounts and tasks have primary key (tenant_id, id)), names, regions, and
reference each other's ids (a task's project_id may be another tenant's project), so a leak
shows as an extra row, a wrong count or a changed row of another tenant.

A seeded random generator writes statements over that schema: SELECTs with joins of every kind
(nested, with global tables, USING, NATURAL, aliased joins, LATERAL, set-returning functions),
subqueries in FROM / WHERE / select list / ON / ORDER BY / LIMIT, correlated subqueries, CTEs
(referenced twice, recursive, shadowing a table name), set operations, aggregates with GROUP BY /
HAVING / ROLLUP / FILTER / WITHIN GROUP, DISTINCT [ON], windows, ORDER BY + LIMIT only over a
total order (or WITH TIES); and UPDATE [FROM], DELETE [USING], INSERT VALUES / SELECT / ON
CONFLICT DO NOTHING / DO UPDATE, MERGE, data-modifying CTEs, RETURNING. Each statement runs as
tenant T (rotating 1, 2, 3) through rowguard on oracle_full and directly (as superuser, no
rowguard) on oracle_ref_T. The property:
  * rowguard denies it (SQLSTATE 42501): counted by reason and by statement shape; more than
    --max-denial-rate of all statements fails the run (a generator whose statements are mostly
    denied proves nothing); a few "probes" (writing another tenant's id into the tenant column,
    changing it, writing a global table) must be denied or fail; or
  * both succeed with equal results: column names and types, command tag (with its row count),
    rows as a multiset, or as a list when the statement fixes a total order; floats rounded to 9
    significant digits, numerics normalized; or
  * both fail with the same SQLSTATE class (two row-data errors such as division by zero and
    unique violation count as the same: which comes first depends on the plan's row order).
  One side failing with a data error (22xxx, 21000) while the other succeeds is reported as a
  note, not a mismatch: whether PostgreSQL evaluates an expression for a row depends on the
  plan, and the plans differ because oracle_full is three times larger.
Writes run in a transaction on each side. When the outcomes agree both are committed; then every
tenant U's rows in oracle_full (read as superuser) must equal the rows of oracle_ref_U (which
changes only through writes made as U): tenant T's rows must match its reference and no other
tenant's rows may have changed. When the outcomes differ both are rolled back. The data is
reloaded every --reset-every statements (and after a state mismatch).

Statements matching a KNOWN_BUGS entry (a known, unfixed rowguard bug) are skipped with a
warning each time, so that the bug stays visible; see KNOWN_BUGS below (--no-known-bugs runs
them anyway).

  --statements N   statements to generate (default 3000; --long: 100000)
  --seed N         generator seed (the data is derived from it too)
  --sql-file F     instead of generating: run each line of F (one statement per line) as
                   --tenant T on freshly loaded data and print both results (for minimizing)
Exit code 0 when every statement satisfied the property, 1 otherwise, 2 on a setup problem.
"""

import argparse
import collections
import decimal
import math
import random
import re
import sys
import time

import psycopg2
import psycopg2.extras

TENANTS = (1, 2, 3)

# Statement shapes that hit a known, not yet fixed rowguard bug: skipped with a warning each time
# (so the bug stays visible) instead of failing every run. An entry is
#   {'name': ..., 'match': <function of the statement text -> bool>, 'description': ...,
#    'detail': <optional function of the statement text -> str, printed with each warning>}.
# Remove an entry once the bug is fixed (run with --no-known-bugs to check a fix first).
#
# Found by this oracle and fixed since (keep their shapes in the generator):
#  * column alias lists: "FROM accounts a (tenant_id, id)" made rowguard's predicate
#    a.tenant_id = '1' test the id column, so tenant 1 read (and, through INSERT ... SELECT,
#    copied into its own rows) every tenant's row with id 1; "a (x, y)" failed with 42703.
#    Now the table becomes a filtered subquery.
#  * libpg_query's deparser drops needed parentheses around an operand of IS [NOT] NULL/TRUE/
#    FALSE/UNKNOWN, IS NOT DISTINCT FROM, [NOT] IN, [NOT] BETWEEN, ::, COLLATE and op ANY/ALL:
#    "WHERE (done OR false) IS TRUE" was forwarded as "WHERE done OR false IS TRUE AND
#    tasks.tenant_id = '1'", reading, updating and deleting other tenants' rows. Now rowguard
#    denies a statement whose rewritten text would not mean what it checked.
KNOWN_BUGS = [
]

# ---------------------------------------------------------------------------------------------
# Schema and data

SCHEMA = """
CREATE TABLE regions (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE statuses (code text PRIMARY KEY, label text, rank int NOT NULL);
CREATE TABLE accounts (
  id int NOT NULL, tenant_id int NOT NULL, name text, region text,
  PRIMARY KEY (tenant_id, id));
CREATE TABLE projects (
  id int PRIMARY KEY, tenant_id int NOT NULL, account_id int, budget numeric(12,2), status text);
CREATE TABLE tasks (
  id int NOT NULL, tenant_id int NOT NULL, project_id int, hours double precision, done boolean,
  PRIMARY KEY (tenant_id, id), CHECK (hours IS NULL OR hours >= 0));
CREATE INDEX ON projects (account_id);
CREATE INDEX ON tasks (project_id);
CREATE INDEX ON accounts (name);
"""

TENANT_TABLES = ('accounts', 'projects', 'tasks')
GLOBAL_TABLES = ('regions', 'statuses')
COLUMNS = {
    'accounts': ('id', 'tenant_id', 'name', 'region'),
    'projects': ('id', 'tenant_id', 'account_id', 'budget', 'status'),
    'tasks': ('id', 'tenant_id', 'project_id', 'hours', 'done'),
    'regions': ('code', 'name'),
    'statuses': ('code', 'label', 'rank'),
}

# Values shared by all tenants, so that a leak shows as a wrong count or an extra row.
NAMES = ['alpha', 'beta', 'gamma', 'delta', 'Alpha', 'omega x', "o'neil"]
REGION_ROWS = [('eu', 'Europe'), ('us', 'United States'), ('apac', 'Asia Pacific'),
               ('latam', 'Latin America'), ('mea', 'Middle East')]
STATUS_ROWS = [('open', 'Open', 1), ('hold', 'On hold', 2), ('closed', 'Closed', 3), ('draft', None, 0)]
REGION_CODES = [r[0] for r in REGION_ROWS]
STATUS_CODES = [s[0] for s in STATUS_ROWS]

# projects.id is unique across tenants (its primary key is id alone): tenant T's projects use
# T*100000 + n. accounts and tasks have primary key (tenant_id, id): their ids overlap on purpose.
def project_base(t):
    return t * 100000


def make_data(seed):
    rng = random.Random(seed * 7919 + 17)
    data = {t: {'accounts': [], 'projects': [], 'tasks': []} for t in TENANTS}
    sizes = {1: (11, 13, 26), 2: (9, 11, 21), 3: (12, 14, 29)}  # accounts, projects, tasks
    for t in TENANTS:
        n_acc, n_proj, n_task = sizes[t]
        n_acc += rng.randint(-2, 2)
        for i in range(1, n_acc + 1):
            name = rng.choice(NAMES) if rng.random() > 0.1 else None
            region = rng.choice(REGION_CODES + ['xx', None]) if rng.random() > 0.1 else None
            data[t]['accounts'].append((i, t, name, region))
        for i in range(1, n_proj + 1):
            account = rng.randint(1, 16) if rng.random() > 0.1 else None  # 13.. dangle; ids exist in other tenants
            budget = decimal.Decimal(rng.randint(1, 40) * 250) + rng.choice([decimal.Decimal('0'), decimal.Decimal('0.50')])
            budget = budget if rng.random() > 0.1 else None
            status = rng.choice(STATUS_CODES + ['zzz']) if rng.random() > 0.1 else None
            data[t]['projects'].append((project_base(t) + i, t, account, budget, status))
        own = [p[0] for p in data[t]['projects']]
        for i in range(1, n_task + 1):
            x = rng.random()
            if x < 0.78:
                project = rng.choice(own)
            elif x < 0.93:  # another tenant's project id: a join leak shows
                project = project_base(rng.choice([u for u in TENANTS if u != t])) + rng.randint(1, 12)
            else:
                project = None
            hours = rng.randint(0, 40) / 4 if rng.random() > 0.1 else None
            done = rng.choice([True, False]) if rng.random() > 0.1 else None
            data[t]['tasks'].append((i, t, project, hours, done))
    return data


def load_rows(conn, tenants, data):
    with conn.cursor() as cur:
        cur.execute('TRUNCATE accounts, projects, tasks, regions, statuses')
        psycopg2.extras.execute_values(cur, 'INSERT INTO regions (code, name) VALUES %s', REGION_ROWS)
        psycopg2.extras.execute_values(cur, 'INSERT INTO statuses (code, label, rank) VALUES %s', STATUS_ROWS)
        for table in TENANT_TABLES:
            rows = [row for t in tenants for row in data[t][table]]
            psycopg2.extras.execute_values(
                cur, 'INSERT INTO %s (%s) VALUES %%s' % (table, ', '.join(COLUMNS[table])), rows)
        cur.execute('ANALYZE')


# One query giving (table, tenant) -> (row count, md5 of the sorted rows); tenant is None for
# the global tables.
CHECKSUM_SQL = ' UNION ALL '.join(
    ["SELECT '%s', tenant_id, count(*), md5(string_agg(x::text, '|' ORDER BY x::text)) "
     "FROM %s x GROUP BY tenant_id" % (t, t) for t in TENANT_TABLES] +
    ["SELECT '%s', NULL::int, count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
     "FROM %s x" % (t, t) for t in GLOBAL_TABLES])


def checksums(conn):
    with conn.cursor() as cur:
        cur.execute(CHECKSUM_SQL)
        return {(r[0], r[1]): (r[2], r[3]) for r in cur.fetchall()}


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# The statement generator

class Col:
    __slots__ = ('name', 'type', 'kind')

    def __init__(self, name, type_, kind=None):
        self.name, self.type, self.kind = name, type_, kind


class Rel:
    """Something in a FROM clause: alias, columns, key (column names unique per row) or None."""

    def __init__(self, alias, cols, key=None, table=None):
        self.alias, self.cols, self.key, self.table = alias, cols, key, table

    def col(self, name):
        for c in self.cols:
            if c.name == name:
                return c
        return None


# kinds: columns of one kind hold comparable values (joins and literals use them)
TABLE_DEFS = {
    'accounts': ([Col('id', 'int', 'acc_id'), Col('tenant_id', 'int', 'tenant'), Col('name', 'text', 'name'),
                  Col('region', 'text', 'region')], ['id'], True),
    'projects': ([Col('id', 'int', 'proj_id'), Col('tenant_id', 'int', 'tenant'), Col('account_id', 'int', 'acc_id'),
                  Col('budget', 'num', 'budget'), Col('status', 'text', 'status')], ['id'], True),
    'tasks': ([Col('id', 'int', 'task_id'), Col('tenant_id', 'int', 'tenant'), Col('project_id', 'int', 'proj_id'),
               Col('hours', 'float', 'hours'), Col('done', 'bool', 'bool')], ['id'], True),
    'regions': ([Col('code', 'text', 'region'), Col('name', 'text', 'rname')], ['code'], False),
    'statuses': ([Col('code', 'text', 'status'), Col('label', 'text', 'label'), Col('rank', 'int', 'rank')],
                 ['code'], False),
}
# Columns a tenant may assign (not the key, not the tenant column).
SETTABLE = {
    'accounts': ['name', 'region'],
    'projects': ['account_id', 'budget', 'status'],
    'tasks': ['project_id', 'hours', 'done'],
}
TYPES = ['int', 'text', 'num', 'float', 'bool']


class Scope:
    """Nested query levels; the innermost level shadows outer aliases."""

    def __init__(self, levels=()):
        self.levels = list(levels)

    def inner(self, rels):
        return Scope(self.levels + [list(rels)])

    def local(self):
        return self.levels[-1] if self.levels else []

    def outer(self):
        seen = {r.alias for r in self.local()}
        out = []
        for lvl in reversed(self.levels[:-1]):
            for r in lvl:
                if r.alias not in seen:
                    seen.add(r.alias)
                    out.append(r)
        return out


class Query:
    """A generated SELECT: text, output columns, key (output positions unique per row, [] for
    at most one row, None when unknown) and whether the text fixes a total row order."""

    def __init__(self, sql, cols, key=None, ordered=False):
        self.sql, self.cols, self.key, self.ordered = sql, cols, key, ordered


class Out:
    """One output column while building a select list."""

    def __init__(self, sql, col, src=None):
        self.sql, self.col, self.src = sql, col, src  # src: (rel alias, column) for a plain column


class Gen:
    def __init__(self, rng, tenant, counters):
        self.r = rng
        self.T = tenant
        self.crossed = False
        self.counters = counters  # per tenant: fresh ids for inserts
        self.n = 0
        self.tags = set()

    # -- helpers -------------------------------------------------------------------------------

    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(seq)

    def weighted(self, pairs):
        total = sum(w for _, w in pairs)
        x = self.r.random() * total
        for v, w in pairs:
            x -= w
            if x < 0:
                return v
        return pairs[-1][0]

    def new_alias(self, prefix):
        self.n += 1
        return '%s%d' % (prefix, self.n)

    def fresh(self, what):
        c = self.counters[self.T]
        c[what] = c.get(what, 0) + 1
        return c[what]

    def new_id(self, table):
        """An id no row of any tenant has yet, in the tenant's own range for projects."""
        n = self.fresh(table)
        if table == 'projects':
            return project_base(self.T) + 1000 + n
        return 100 + n  # the same for every tenant: accounts/tasks keys include tenant_id

    def project_id_expr(self, x):
        """A new project id computed from an int expression, inside the tenant's id block."""
        k = self.fresh('projblock') % 40
        return '%d + (abs(%s) %% 1000)' % (project_base(self.T) + 50000 + k * 1000, x)

    # -- literals ------------------------------------------------------------------------------

    def lit(self, type_, kind=None):
        r = self.r
        if kind == 'acc_id':
            return str(r.randint(0, 16))
        if kind == 'task_id':
            return str(r.randint(0, 48))
        if kind == 'proj_id':
            t = self.T if r.random() < 0.75 else r.choice(TENANTS)
            return str(project_base(t) + r.randint(0, 20))
        if kind == 'tenant':
            return r.choice(['1', '2', '3', "'1'", "'2'", "'3'", str(self.T)])
        if kind == 'region':
            return sql_str(r.choice(REGION_CODES + ['xx']))
        if kind == 'status':
            return sql_str(r.choice(STATUS_CODES + ['zzz']))
        if kind == 'rname':
            return sql_str(r.choice([x[1] for x in REGION_ROWS]))
        if kind == 'label':
            return sql_str(r.choice(['Open', 'Closed', 'On hold']))
        if kind == 'rank':
            return str(r.randint(0, 4))
        if kind == 'budget' or type_ == 'num':
            return '%d.%s' % (r.randint(1, 40) * 250, r.choice(['00', '50', '25']))
        if kind == 'hours' or type_ == 'float':
            return str(r.randint(0, 40) / 4)
        if type_ == 'int':
            return str(r.randint(-3, 20))
        if type_ == 'text':
            return sql_str(r.choice(NAMES))
        if type_ == 'bool':
            return r.choice(['true', 'false'])
        raise ValueError(type_)

    # -- column references -----------------------------------------------------------------------

    def cands(self, rels, type_=None, kind=None):
        return [(rel, c) for rel in rels for c in rel.cols
                if (c.type == type_ if type_ is not None else c.type in TYPES)
                and (kind is None or c.kind == kind)]

    def ref(self, scope, rel, c):
        local = scope.local()
        if len(local) == 1 and local[0] is rel and self.chance(0.3):
            return c.name
        return '%s.%s' % (rel.alias, c.name)

    def col_ref(self, scope, type_=None, kind=None, outer_p=0.1):
        """(sql, Col, (alias, name)) of a column of the given type, or None."""
        local = self.cands(scope.local(), type_, kind)
        outer = self.cands(scope.outer(), type_, kind)
        pool = outer if (outer and (not local or self.chance(outer_p))) else local
        if not pool:
            return None
        rel, c = self.pick(pool)
        if pool is outer:
            self.tags.add('correlated')
        return self.ref(scope, rel, c), c, (rel.alias, c.name)

    # -- expressions -----------------------------------------------------------------------------

    def expr(self, scope, type_, depth=0):
        """(sql, kind) of an expression of the type over the scope."""
        c = self.col_ref(scope, type_)
        if depth >= 2 or self.chance(0.55):
            if c:
                return c[0], c[1].kind
            return self.lit(type_), None
        r = self.r
        sub = lambda t: self.expr(scope, t, depth + 1)[0]
        if self.chance(0.08) and depth == 0:
            return self.scalar_subquery(scope, type_), None
        if self.chance(0.07):
            return 'CASE WHEN %s THEN %s ELSE %s END' % (self.pred(scope, depth + 1), sub(type_), sub(type_)), None
        if type_ == 'int':
            k = r.randint(1, 9)
            return self.pick([
                '(%s + %d)' % (sub('int'), k), '(%s * 2)' % sub('int'), 'abs(%s - %d)' % (sub('int'), k),
                'coalesce(%s, %d)' % (sub('int'), -k), 'length(%s)' % sub('text'), '(%s %% 5)' % sub('int'),
                'greatest(%s, %d)' % (sub('int'), k), '(- %s)' % sub('int'), 'char_length(%s)' % sub('text'),
                '(%s)::int' % sub('num'), "position('a' IN %s)" % sub('text'),
                'CASE %s WHEN 1 THEN 10 WHEN 2 THEN 20 END' % sub('int'),
                'int4(%s)' % sub('num'), 'int8(%s)::int' % sub('int'),
            ]), None
        if type_ == 'text':
            return self.pick([
                'upper(%s)' % sub('text'), 'lower(%s)' % sub('text'), "(%s || '-x')" % sub('text'),
                "concat_ws('/', %s, %s)" % (sub('text'), sub('text')), "coalesce(%s, 'none')" % sub('text'),
                'left(%s, 2)' % sub('text'), 'nullif(%s, %s)' % (sub('text'), self.lit('text')),
                "replace(%s, 'a', 'A')" % sub('text'), '(%s)::text' % sub('int'),
                "(%s || %s)" % (sub('text'), sub('text')),
                'substring(%s FROM 2 FOR 3)' % sub('text'), "trim(BOTH 'a' FROM %s)" % sub('text'),
                "CASE %s WHEN 'alpha' THEN 'A' WHEN 'beta' THEN 'B' ELSE 'other' END" % sub('text'),
                'text(%s)' % sub('int'),
                'xmlserialize(CONTENT xmlelement(name e, xmlattributes(%s AS a), %s) AS text)' % (sub('int'), sub('text')),
                "xmlserialize(CONTENT xmlforest(%s AS x, %s AS y) AS text)" % (sub('text'), sub('num')),
            ]), None
        if type_ == 'num':
            return self.pick([
                'round(%s * 1.1, 2)' % sub('num'), 'coalesce(%s, 0)' % sub('num'), '(%s + 10)' % sub('num'),
                '(%s)::numeric' % sub('int'), '(%s - %s)' % (sub('num'), sub('num')), 'abs(%s)' % sub('num'),
            ]), None
        if type_ == 'float':
            return self.pick([
                '(%s * 2)' % sub('float'), 'coalesce(%s, 0)' % sub('float'), '(%s + 0.25)' % sub('float'),
                '(%s)::float8' % sub('int'), 'greatest(%s, 1.5)' % sub('float'),
                'float8(%s)' % sub('int'), 'float8(float4(%s))' % sub('int'),
            ]), None
        if type_ == 'bool':
            return self.pick(['(NOT %s)' % sub('bool'), self.pred(scope, depth + 1),
                              'coalesce(%s, false)' % sub('bool')]), None
        raise ValueError(type_)

    def comparable_expr(self, scope, depth):
        """(sql, type, kind) for comparisons: a column (mostly) or a computed expression."""
        type_ = self.pick(['int', 'int', 'text', 'text', 'num', 'float', 'bool'])
        if self.chance(0.75):
            c = self.col_ref(scope, None)
            if c:
                return c[0], c[1].type, c[1].kind
        sql, kind = self.expr(scope, type_, depth + 1)
        return sql, type_, kind

    def pred(self, scope, depth=0):
        r = self.r
        if depth < 2 and self.chance(0.25):
            op = self.pick(['AND', 'AND', 'OR'])
            p = '(%s %s %s)' % (self.pred(scope, depth + 1), op, self.pred(scope, depth + 1))
            return 'NOT %s' % p if self.chance(0.15) else p
        if depth < 2 and self.chance(0.14):
            return self.subquery_pred(scope, depth)
        if self.chance(0.02):
            # can fail (division by zero) depending on which rows are evaluated
            self.tags.add('may_error')
            c = self.col_ref(scope, 'int')
            if c:
                return '(100 / (%s - %s)) > 3' % (c[0], self.lit('int', c[1].kind))
        if depth < 2 and self.chance(0.05):
            # a boolean expression as an operand (see KNOWN_BUGS: several of these positions
            # are mis-deparsed when the operand is an AND/OR/NOT expression)
            self.tags.add('bool_operand')
            inner = '(%s)' % self.pred(scope, depth + 1)
            return self.pick([
                '%s = true' % inner, '%s <> false' % inner, '%s IS DISTINCT FROM false' % inner,
                'true = %s' % inner, '%s IS TRUE' % inner, '%s IS NOT FALSE' % inner, '%s IS NULL' % inner,
                '%s IN (true)' % inner, '%s = ANY (ARRAY[true, NULL])' % inner,
                '%s IS NOT DISTINCT FROM true' % inner, "%s::text = 'true'" % inner,
                '%s = (%s)' % (inner, self.pred(scope, depth + 1)),
            ])
        if self.chance(0.03):
            # row comparisons
            self.tags.add('row_compare')
            a = self.col_ref(scope, None)
            b = self.col_ref(scope, None)
            if a and b:
                return self.pick([
                    '(%s, %s) = (%s, %s)' % (a[0], b[0], self.lit(a[1].type, a[1].kind), self.lit(b[1].type, b[1].kind)),
                    '(%s, %s) IN ((%s, %s), (%s, %s))' % (a[0], b[0], self.lit(a[1].type, a[1].kind),
                                                          self.lit(b[1].type, b[1].kind), self.lit(a[1].type, a[1].kind),
                                                          self.lit(b[1].type, b[1].kind)),
                    'ROW(%s, %s) IS NOT NULL' % (a[0], b[0]),
                    '(%s, %s) < (%s, %s)' % (a[0], b[0], self.lit(a[1].type, a[1].kind), self.lit(b[1].type, b[1].kind)),
                ])
        # two columns of the same kind
        if self.chance(0.1):
            c = self.col_ref(scope, None)
            if c and c[1].kind:
                d = self.col_ref(scope, c[1].type, c[1].kind)
                if d and d[0] != c[0]:
                    return '%s %s %s' % (c[0], self.pick(['=', '<>', '<', '>=', 'IS DISTINCT FROM']), d[0])
        e, t, k = self.comparable_expr(scope, depth)
        lit = lambda: self.lit(t, k)
        if t == 'bool':
            return self.pick(['%s' % e, 'NOT %s' % e, '%s IS TRUE' % e, '%s IS NOT FALSE' % e,
                              '%s IS UNKNOWN' % e, '%s = %s' % (e, lit()), '%s IS NULL' % e])
        forms = [
            lambda: '%s %s %s' % (e, self.pick(['=', '<>', '<', '<=', '>', '>=', '!=']), lit()),
            lambda: '%s IS NULL' % e,
            lambda: '%s IS NOT NULL' % e,
            lambda: '%s IN (%s)' % (e, ', '.join(lit() for _ in range(r.randint(1, 4)))),
            lambda: '%s NOT IN (%s)' % (e, ', '.join(lit() for _ in range(r.randint(1, 3)))),
            lambda: '%s BETWEEN %s AND %s' % (e, lit(), lit()),
            lambda: '%s NOT BETWEEN SYMMETRIC %s AND %s' % (e, lit(), lit()),
            lambda: '%s IS DISTINCT FROM %s' % (e, lit()),
            lambda: '%s IS NOT DISTINCT FROM %s' % (e, lit()),
            lambda: '%s = ANY (ARRAY[%s, %s])' % (e, lit(), lit()),
        ]
        if t == 'text':
            forms += [
                lambda: "%s LIKE '%s%%'" % (e, self.pick(['a', 'al', 'o', 'b', 'A'])),
                lambda: "%s ILIKE '%%%s%%'" % (e, self.pick(['a', 'E', "''", 'x'])),
                lambda: "%s NOT LIKE '%%a'" % e,
                lambda: "%s %s '%s'" % (e, self.pick(['~', '~*', '!~']), self.pick(['^a', 'a$', 'e.a', '[ob]'])),
                lambda: "%s COLLATE \"C\" < %s" % (e, lit()),
            ]
            if self.chance(0.02):
                # LIKE ... ESCAPE and SIMILAR TO call like_escape / similar_to_escape
                self.tags.add('cov:like_escape_similar')
                forms = [lambda: "%s LIKE 'a!%%%%' ESCAPE '!'" % e, lambda: "%s SIMILAR TO '(a|b)%%'" % e]
        return self.pick(forms)()

    # -- subqueries ------------------------------------------------------------------------------

    def correlation(self, inner_rels, scope):
        """'inner = outer' for columns of the same kind, or None."""
        pairs = [(ir, ic, orl, oc) for ir, ic in self.cands(inner_rels)
                 for orl, oc in self.cands(scope.local() + scope.outer())
                 if ic.kind and ic.kind == oc.kind and ic.kind != 'bool']
        if not pairs:
            return None
        ir, ic, orl, oc = self.pick(pairs)
        self.tags.add('correlated')
        return '%s.%s = %s.%s' % (ir.alias, ic.name, orl.alias, oc.name)

    def sub_from(self, scope, depth, ctes):
        """FROM of a subquery in an expression: mostly one table, sometimes a join."""
        if self.chance(0.7):
            sql, rels = self.from_item(scope, depth + 1, ctes, set(), allow_derived=False)
            return sql, rels, []
        return self.from_clause(scope, depth + 1, ctes)

    def subquery_pred(self, scope, depth):
        ctes = getattr(self, 'cur_ctes', {})
        from_sql, rels, conds = self.sub_from(scope, depth, ctes)
        inner = scope.inner(rels)
        corr = self.correlation(rels, scope) if self.chance(0.75) else None
        where = list(conds) + ([corr] if corr else [])
        if self.chance(0.5):
            where.append(self.pred(inner, depth + 1))
        where_sql = (' WHERE ' + ' AND '.join(where)) if where else ''
        form = self.pick(['exists', 'not_exists', 'in', 'not_in', 'scalar', 'any', 'all'])
        self.tags.add('subq:' + form)
        if form in ('exists', 'not_exists'):
            neg = 'NOT ' if form == 'not_exists' else ''
            return '%sEXISTS (SELECT %s FROM %s%s)' % (neg, self.pick(['1', '*', 'NULL']), from_sql, where_sql)
        # IN / NOT IN / ANY / ALL over a column of the same kind as an outer expression
        c = self.col_ref(inner, None, outer_p=0)
        if c is None:
            return 'EXISTS (SELECT 1 FROM %s%s)' % (from_sql, where_sql)
        inner_sql, col = c[0], c[1]
        outer_cands = [x for x in self.cands(scope.local() + scope.outer(), col.type, col.kind)]
        if outer_cands:
            orl, oc = self.pick(outer_cands)
            outer_sql = '%s.%s' % (orl.alias, oc.name)
        else:
            outer_sql = self.lit(col.type, col.kind)
        if form == 'in':
            return '%s IN (SELECT %s FROM %s%s)' % (outer_sql, inner_sql, from_sql, where_sql)
        if form == 'not_in':
            # NOT IN with a NULL in the subquery is never true: keep both outcomes possible
            extra = (' AND ' if where_sql else ' WHERE ') + '%s IS NOT NULL' % inner_sql if self.chance(0.7) else ''
            return '%s NOT IN (SELECT %s FROM %s%s%s)' % (outer_sql, inner_sql, from_sql, where_sql, extra)
        if form == 'any':
            return '%s %s ANY (SELECT %s FROM %s%s)' % (outer_sql, self.pick(['=', '<', '>=']), inner_sql, from_sql, where_sql)
        if form == 'all':
            return '%s %s ALL (SELECT %s FROM %s%s)' % (outer_sql, self.pick(['<>', '>', '<=']), inner_sql, from_sql, where_sql)
        agg = self.agg_for(inner, col.type)
        return '%s %s (SELECT %s FROM %s%s)' % (outer_sql, self.pick(['=', '<', '>', '>=']), agg, from_sql, where_sql)

    def scalar_subquery(self, scope, type_):
        """(SELECT <aggregate> FROM ... [WHERE correlated]): one row, one column of type_."""
        ctes = getattr(self, 'cur_ctes', {})
        from_sql, rels, conds = self.sub_from(scope, 1, ctes)
        inner = scope.inner(rels)
        where = list(conds)
        if self.chance(0.7):
            corr = self.correlation(rels, scope)
            if corr:
                where.append(corr)
        if self.chance(0.3):
            where.append(self.pred(inner, 2))
        where_sql = (' WHERE ' + ' AND '.join(where)) if where else ''
        self.tags.add('subq:scalar')
        if self.chance(0.2):
            # ORDER BY a total key + LIMIT 1 instead of an aggregate
            keys = [(rel, rel.key) for rel in rels if rel.key]
            if len(keys) == len(rels):
                c = self.col_ref(inner, type_, outer_p=0)
                if c:
                    order = ', '.join('%s.%s %s' % (rel.alias, k, self.pick(['', 'DESC']))
                                      for rel, ks in keys for k in ks)
                    return '(SELECT %s FROM %s%s ORDER BY %s LIMIT 1)' % (c[0], from_sql, where_sql, order)
        return '(SELECT %s FROM %s%s)' % (self.agg_for(inner, type_), from_sql, where_sql)

    def array_subquery(self, scope):
        """ARRAY(SELECT c FROM ... ORDER BY c): ordered by the value, so deterministic."""
        self.tags.add('array_subquery')
        ctes = getattr(self, 'cur_ctes', {})
        from_sql, rels, conds = self.sub_from(scope, 1, ctes)
        inner = scope.inner(rels)
        where = list(conds)
        corr = self.correlation(rels, scope) if self.chance(0.7) else None
        if corr:
            where.append(corr)
        c = self.col_ref(inner, None, outer_p=0)
        where_sql = (' WHERE ' + ' AND '.join(where)) if where else ''
        return 'ARRAY(SELECT %s FROM %s%s ORDER BY 1)' % (c[0] if c else '1', from_sql, where_sql)

    def agg_for(self, scope, type_):
        """An aggregate over scope returning type_ (int also stands for bigint)."""
        c = self.col_ref(scope, type_, outer_p=0)
        if type_ == 'int':
            if c and self.chance(0.5):
                return '%s(%s)' % (self.pick(['max', 'min', 'sum']), c[0])
            any_c = self.col_ref(scope, None, outer_p=0)
            if any_c and self.chance(0.5):
                return 'count(%s%s)' % (self.pick(['', 'DISTINCT ']), any_c[0])
            return 'count(*)'
        if c is None:
            return {'text': "'none'", 'num': '0.0', 'float': '0::float8', 'bool': 'false'}[type_]
        if type_ == 'text':
            return self.pick(['max(%s)' % c[0], 'min(%s)' % c[0],
                              "string_agg(%s, ',' ORDER BY %s)" % (c[0], c[0])])
        if type_ in ('num', 'float'):
            return '%s(%s)' % (self.pick(['sum', 'max', 'min', 'avg']), c[0])
        return '%s(%s)' % (self.pick(['bool_or', 'bool_and', 'every']), c[0])

    # -- FROM --------------------------------------------------------------------------------

    def base_table(self, used, global_p=0.12):
        if self.chance(global_p):
            table = self.pick(['regions', 'statuses'])
            self.tags.add('global')
        else:
            table = self.pick(['accounts', 'projects', 'tasks', 'accounts', 'projects', 'tasks'])
        cols, key, _ = TABLE_DEFS[table]
        shadowed = table in getattr(self, 'cur_ctes', {})  # a CTE of that name is in scope
        qual = 'public.' if shadowed or self.chance(0.1) else ''
        only = 'ONLY ' if self.chance(0.03) else ''
        if only:
            self.tags.add('only')
        if table not in used and not shadowed and self.chance(0.3):
            alias, sql = table, only + qual + table
        else:
            alias = self.new_alias(table[0])
            sql = '%s%s%s %s%s' % (only, qual, table, self.pick(['', 'AS ']), alias)
            if self.chance(0.025):
                # a column alias list: "accounts AS a1 (x, y)" renames the first columns; half
                # the time with the table's own column names shuffled (tenant_id among them)
                self.tags.add('col_alias')
                n = self.r.randint(1, len(cols))
                if self.chance(0.5):
                    names = [c.name for c in cols]
                    self.r.shuffle(names)
                    names = names[:n]
                    self.tags.add('col_alias_permuted')
                else:
                    names = ['%s_%s' % (c.name, alias) for c in cols[:n]]
                renamed = {c.name: nm for c, nm in zip(cols, names)}
                new_cols = [Col(renamed.get(c.name, c.name), c.type, c.kind) for c in cols]
                if len({c.name for c in new_cols}) == len(new_cols):
                    sql += ' (%s)' % ', '.join(names)
                    used.add(alias)
                    return sql + self.tablesample(), Rel(alias, new_cols, [renamed.get(k, k) for k in key], table)
        used.add(alias)
        return sql + self.tablesample(), Rel(alias, cols, key, table)

    def tablesample(self):
        # A sample of 100 %: every row on both sides whatever the physical layout (oracle_full and
        # oracle_ref_T store different blocks), so the results compare; the rewrite is the same
        # as for any percentage (a filtered, fenced subquery of the sample).
        if not self.chance(0.04):
            return ''
        self.tags.add('tablesample')
        # BERNOULLI without REPEATABLE: SYSTEM (whole pages) and a fixed seed are refused on tenant
        # tables (both reveal where rows lie).
        return ' TABLESAMPLE BERNOULLI (100)'

    def from_item(self, scope, depth, ctes, used, allow_derived=True):
        """(sql, [Rel]) of one FROM item."""
        options = [('base', 70)]
        if ctes:
            options.append(('cte', 30))
        if allow_derived and depth < 2:
            options.append(('derived', 12))
            options.append(('values', 3))
        options.append(('srf', 3))
        what = self.weighted(options)
        if what == 'srf':
            self.tags.add('srf')
            alias = self.new_alias('g')
            used.add(alias)
            lo, hi = sorted([self.r.randint(0, 16), self.r.randint(0, 16)])
            kind = self.pick(['acc_id', 'task_id'])
            if self.chance(0.2):
                self.tags.add('xmltable')
                doc = ''.join('<i v="%d"/>' % v for v in range(lo, hi + 1))
                return ("XMLTABLE('/r/i' PASSING xmlparse(DOCUMENT '<r>%s</r>') COLUMNS id int PATH '@v', "
                        "ord FOR ORDINALITY) AS %s" % (doc, alias),
                        [Rel(alias, [Col('id', 'int', kind), Col('ord', 'int')], ['ord'])])
            if self.chance(0.2):
                self.tags.add('rows_from')
                return ('ROWS FROM (generate_series(%d, %d), generate_series(1, 3)) AS %s (id, n)' % (lo, hi, alias),
                        [Rel(alias, [Col('id', 'int', kind), Col('n', 'int')], None)])
            if self.chance(0.5):
                return ('generate_series(%d, %d) AS %s (id)' % (lo, hi, alias),
                        [Rel(alias, [Col('id', 'int', kind)], ['id'])])
            return ('ROWS FROM (unnest(ARRAY[%d, %d, %d])) WITH ORDINALITY AS %s (id, ord)' % (lo, hi, lo, alias),
                    [Rel(alias, [Col('id', 'int', kind), Col('ord', 'int')], ['ord'])])
        if what == 'base':
            sql, rel = self.base_table(used)
            return sql, [rel]
        if what == 'cte':
            name = self.pick(sorted(ctes))
            cols, key = ctes[name]
            self.tags.add('cte_ref')
            self.cte_refs[name] = self.cte_refs.get(name, 0) + 1
            if self.cte_refs[name] == 2:
                self.tags.add('cte_twice')
            if name not in used and self.chance(0.5):
                used.add(name)
                return name, [Rel(name, cols, key)]
            alias = self.new_alias('c')
            used.add(alias)
            return '%s %s' % (name, alias), [Rel(alias, cols, key)]
        if what == 'values':
            self.tags.add('values')
            alias = self.new_alias('v')
            rows = ', '.join('(%s, %s)' % (self.lit('int', 'acc_id'), self.pick([self.lit('text'), 'NULL']))
                             for _ in range(self.r.randint(1, 4)))
            # a typed first row keeps NULL-only columns text
            return ('(VALUES %s) AS %s (id, name)' % (rows, alias),
                    [Rel(alias, [Col('id', 'int', 'acc_id'), Col('name', 'text', 'name')], None)])
        self.tags.add('derived')
        q = self.select(Scope(), depth + 1, ctes=ctes, named=True)
        alias = self.new_alias('d')
        used.add(alias)
        key = [q.cols[i].name for i in q.key] if q.key else None
        return '(%s) %s%s' % (q.sql, self.pick(['', 'AS ']), alias), [Rel(alias, q.cols, key)]

    def join_tree(self, scope, depth, ctes, n, used):
        if n == 1:
            return self.from_item(scope, depth, ctes, used)
        ln = self.r.randint(1, n - 1)
        lsql, lrels = self.join_tree(scope, depth, ctes, ln, used)
        rsql, rrels = self.join_tree(scope, depth, ctes, n - ln, used)
        if ln > 1 and self.chance(0.5) and not re.search(r' AS j\d+$', lsql):
            lsql = '(%s)' % lsql
        if n - ln > 1:
            if not re.search(r' AS j\d+$', rsql):  # "(a JOIN b) AS j" is already a table_ref
                rsql = '(%s)' % rsql
            self.tags.add('nested_join')
        jt = self.weighted([('JOIN', 20), ('INNER JOIN', 5), ('LEFT JOIN', 20), ('LEFT OUTER JOIN', 5),
                            ('RIGHT JOIN', 12), ('FULL JOIN', 10), ('FULL OUTER JOIN', 3),
                            ('CROSS JOIN', 6 if not self.crossed else 0)])
        self.tags.add('join:' + jt.split()[0].lower())
        if jt == 'CROSS JOIN':
            self.crossed = True  # at most one cross product per statement keeps row counts small
        if any(r.table in GLOBAL_TABLES for r in lrels + rrels):
            self.tags.add('join_global')
        rels = lrels + rrels
        if jt == 'CROSS JOIN':
            sql = '%s CROSS JOIN %s' % (lsql, rsql)
        else:
            lnames = collections.Counter(c.name for r in lrels for c in r.cols)
            rnames = collections.Counter(c.name for r in rrels for c in r.cols)
            common = sorted(n_ for n_ in lnames if lnames[n_] == 1 and rnames.get(n_) == 1)
            pairs = [(lr, lc, rr, rc) for lr, lc in self.cands(lrels) for rr, rc in self.cands(rrels)
                     if lc.kind and lc.kind == rc.kind and lc.kind != 'bool']
            # joining on the tenant column is a cross join per tenant: at most one cross product
            # per statement (see self.crossed)
            if any(p[1].kind != 'tenant' for p in pairs) and (self.crossed or self.chance(0.85)):
                pairs = [p for p in pairs if p[1].kind != 'tenant']
            if common and self.chance(0.1):
                using = self.pick(common)
                self.tags.add('using')
                sql = '%s %s %s USING (%s)' % (lsql, jt, rsql, using)
                self.has_using = True
            elif (len(lrels) == 1 and len(rrels) == 1 and lrels[0].table and rrels[0].table and common
                  and set(common) == set(lnames) & set(rnames) and self.chance(0.05)):
                self.tags.add('natural')
                sql = '%s NATURAL %s %s' % (lsql, jt, rsql)
                self.has_using = True
            else:
                if pairs:
                    lr, lc, rr, rc = self.pick(pairs)
                    cond = '%s.%s = %s.%s' % (lr.alias, lc.name, rr.alias, rc.name)
                    if lc.kind == 'tenant':
                        self.crossed = True
                else:
                    cond = 'true'
                    self.crossed = True
                if not jt.startswith('FULL') and self.chance(0.25):
                    cond += ' AND ' + self.pred(Scope([rels]), 1)
                elif not jt.startswith('FULL') and self.chance(0.06):
                    self.tags.add('on_subquery')
                    cond += ' AND ' + self.subquery_pred(Scope([rels]), 1)
                sql = '%s %s %s ON %s' % (lsql, jt, rsql, cond)
        if self.chance(0.04):
            # (a JOIN b ...) AS j: only j's unambiguous columns stay visible
            self.tags.add('join_alias')
            alias = self.new_alias('j')
            counts = collections.Counter(c.name for r in rels for c in r.cols)
            if getattr(self, 'has_using', False):
                return sql, rels  # USING merges columns: keep it simple
            cols = [c for r in rels for c in r.cols if counts[c.name] == 1]
            if cols:
                return '(%s) AS %s' % (sql, alias), [Rel(alias, cols, None)]
        return sql, rels

    def from_clause(self, scope, depth, ctes):
        """(sql, [Rel], [join conditions for WHERE])."""
        used = set()
        if depth == 0:
            shape = self.weighted([('single', 30), ('join2', 28), ('join3', 16), ('comma', 9), ('lateral', 9),
                                   ('join4', 3)])
        else:  # subqueries: smaller, so that joins of joins stay cheap
            shape = self.weighted([('single', 50), ('join2', 28), ('comma', 10), ('lateral', 8)])
        if shape == 'single':
            sql, rels = self.from_item(scope, depth, ctes, used)
            return sql, rels, []
        if shape.startswith('join'):
            return self.join_tree(scope, depth, ctes, int(shape[4]), used) + ([],)
        if shape == 'comma':
            self.tags.add('comma_join')
            asql, arels = self.from_item(scope, depth, ctes, used)
            bsql, brels = self.from_item(scope, depth, ctes, used)
            conds = []
            pairs = [(a, ac, b, bc) for a, ac in self.cands(arels) for b, bc in self.cands(brels)
                     if ac.kind and ac.kind == bc.kind and ac.kind != 'bool']
            if any(p[1].kind != 'tenant' for p in pairs) and (self.crossed or self.chance(0.85)):
                pairs = [p for p in pairs if p[1].kind != 'tenant']
            if pairs and (self.crossed or self.chance(0.85)):
                a, ac, b, bc = self.pick(pairs)
                conds.append('%s.%s = %s.%s' % (a.alias, ac.name, b.alias, bc.name))
                if ac.kind == 'tenant':
                    self.crossed = True
            else:
                self.crossed = True
            return '%s, %s' % (asql, bsql), arels + brels, conds
        # LATERAL
        self.tags.add('lateral')
        asql, arels = self.from_item(scope, depth, ctes, used, allow_derived=False)
        lscope = scope.inner(arels)
        bsql, brels = self.from_item(lscope, depth + 1, ctes, set(), allow_derived=False)
        inner = lscope.inner(brels)
        corr = self.correlation(brels, lscope)
        where = [corr] if corr else []
        if self.chance(0.4):
            where.append(self.pred(inner, 1))
        where_sql = (' WHERE ' + ' AND '.join(where)) if where else ''
        alias = self.new_alias('l')
        if self.chance(0.5):
            # aggregated: one row per outer row
            n_type = self.pick(['num', 'float', 'text', 'int'])
            sub = 'SELECT count(*) AS n, %s AS v FROM %s%s' % (self.agg_for(inner, n_type), bsql, where_sql)
            cols = [Col('n', 'int'), Col('v', n_type)]
            key = []
        else:
            c = self.col_ref(inner, None, outer_p=0) or ('1', Col('one', 'int'), None)
            k = brels[0].key
            cols_sql = ['%s.%s AS k%d' % (brels[0].alias, kk, i) for i, kk in enumerate(k or [])]
            cols = [Col('k%d' % i, brels[0].col(kk).type, brels[0].col(kk).kind) for i, kk in enumerate(k or [])]
            cols_sql.append('%s AS v' % c[0])
            cols.append(Col('v', c[1].type, c[1].kind))
            sub = 'SELECT %s FROM %s%s' % (', '.join(cols_sql), bsql, where_sql)
            key = ['k%d' % i for i in range(len(k))] if k else None
            if k and self.chance(0.3):
                sub += ' ORDER BY %s LIMIT %d' % (', '.join('k%d' % i for i in range(len(k))), self.r.randint(1, 3))
        lrel = Rel(alias, cols, key)
        form = self.pick(['comma', 'cross', 'left'])
        if form == 'comma':
            sql = '%s, LATERAL (%s) %s' % (asql, sub, alias)
        elif form == 'cross':
            sql = '%s CROSS JOIN LATERAL (%s) AS %s' % (asql, sub, alias)
        else:
            sql = '%s LEFT JOIN LATERAL (%s) AS %s ON true' % (asql, sub, alias)
        # the lateral item's key is only unique per outer row: combine with the outer keys
        return sql, arels + [lrel], []

    # -- SELECT ------------------------------------------------------------------------------

    def with_clause(self, scope, depth, ctes):
        ctes = dict(ctes)
        parts = []
        recursive = self.chance(0.1)
        if recursive:
            self.tags.add('recursive_cte')
            name = self.new_alias('r')
            lim = self.r.randint(2, 8)
            parts.append('%s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM %s WHERE n < %d)' % (name, name, lim))
            ctes[name] = ([Col('n', 'int', self.pick(['acc_id', 'task_id']))], ['n'])
        for _ in range(self.r.randint(1, 2)):
            name = self.new_alias('w')
            if not recursive and self.chance(0.2):
                # named like a tenant table: unqualified references now mean the CTE
                name = self.pick([t for t in TENANT_TABLES])
                if name in ctes:
                    name = self.new_alias('w')
                else:
                    self.tags.add('cte_shadow')
            q = self.select(Scope(), depth + 1, ctes=ctes, named=True, allow_with=False)
            mat = self.pick(['', '', 'MATERIALIZED ', 'NOT MATERIALIZED '])
            parts.append('%s AS %s(%s)' % (name, mat, q.sql))
            ctes[name] = (q.cols, [q.cols[i].name for i in q.key] if q.key is not None else None)
        self.tags.add('cte')
        return 'WITH %s%s ' % ('RECURSIVE ' if recursive else '', ', '.join(parts)), ctes

    def select(self, scope, depth, want=None, top=False, ctes=None, named=False, allow_with=True):
        ctes = dict(ctes or {})
        if depth == 0:
            self.cte_refs = {}
        with_sql = ''
        if allow_with and depth <= 1 and self.chance(0.2 if top else 0.08):
            with_sql, ctes = self.with_clause(scope, depth, ctes)
        saved = getattr(self, 'cur_ctes', {})
        self.cur_ctes = ctes
        try:
            if depth <= 1 and self.chance(0.12 if top else 0.06):
                q = self.setop(scope, depth, want, ctes, named, top)
            else:
                q = self.select_core(scope, depth, want, ctes, named, top)
        finally:
            self.cur_ctes = saved
        q.sql = with_sql + q.sql
        return q

    def setop(self, scope, depth, want, ctes, named, top):
        if want is None:
            want = [self.pick(TYPES) for _ in range(self.r.randint(1, 3))]
        op = self.pick(['UNION', 'UNION ALL', 'INTERSECT', 'INTERSECT ALL', 'EXCEPT', 'EXCEPT ALL'])
        self.tags.add('setop:' + op.split()[0].lower())
        a = self.select_core(scope, depth + 1, want, ctes, named, False, in_setop=True)
        b = self.select_core(scope, depth + 1, want, ctes, False, False, in_setop=True)
        if self.chance(0.2):
            c = self.select_core(scope, depth + 1, want, ctes, False, False, in_setop=True)
            op2 = self.pick(['UNION', 'UNION ALL', 'EXCEPT'])
            sql = '(%s %s %s) %s %s' % (a.sql, op, b.sql, op2, c.sql)
            distinct = op2 != 'UNION ALL' and op2 != 'EXCEPT ALL'
        else:
            sql = '%s %s %s' % (a.sql, op, b.sql)
            distinct = not op.endswith('ALL')
        key = list(range(len(want))) if distinct else None
        ordered = False
        if key is not None and (top or named) and self.chance(0.4):
            sql += ' ORDER BY %s' % ', '.join('%d %s' % (i + 1, self.pick(['', 'DESC', 'NULLS FIRST']))
                                              for i in key)
            ordered = top
            if self.chance(0.5):
                sql += ' LIMIT %d' % self.r.randint(1, 6)
        return Query(sql, a.cols, key, ordered)

    def select_core(self, scope, depth, want, ctes, named, top, in_setop=False):
        r = self.r
        saved_window, self.window_clause = getattr(self, 'window_clause', ''), ''
        self.has_using = False
        no_from = self.chance(0.02) and want is None
        if no_from:
            from_sql, rels, conds = '', [], []
        else:
            from_sql, rels, conds = self.from_clause(scope, depth, ctes)
        has_using = self.has_using
        inner = scope.inner(rels)
        mode = self.weighted([('plain', 60), ('agg', 28), ('distinct', 8), ('distinct_on', 4)])
        if no_from or (mode == 'distinct_on' and (want or in_setop)):
            mode = 'plain'
        outs = []
        group_sql = ''
        having = ''
        key = None
        if mode == 'agg':
            self.tags.add('agg')
            groups = []
            if want:
                for t in want:
                    if self.chance(0.5):
                        c = self.col_ref(inner, t, outer_p=0)
                        if c:
                            outs.append(Out(c[0], Col(c[1].name, t, c[1].kind), c[2]))
                            groups.append(len(outs) - 1)
                            continue
                    outs.append(Out(self.agg_for(inner, t), Col('agg', t)))
            else:
                for _ in range(r.choice([0, 1, 1, 2])):
                    c = self.col_ref(inner, None, outer_p=0)
                    if c and c[0] not in [o.sql for o in outs]:
                        outs.append(Out(c[0], c[1], c[2]))
                        groups.append(len(outs) - 1)
                for _ in range(r.randint(1, 3)):
                    t = self.pick(TYPES)
                    outs.append(Out(self.agg_for(inner, t), Col('agg', t)))
                if self.chance(0.1):
                    c = self.col_ref(inner, None, outer_p=0)
                    if c:
                        outs.append(Out('array_agg(%s ORDER BY %s)' % (c[0], c[0]), Col('arr', 'arr')))
                if self.chance(0.1):
                    outs.append(Out('count(*) FILTER (WHERE %s)' % self.pred(inner, 1), Col('cnt', 'int')))
            if not want and self.chance(0.06):
                c = self.col_ref(inner, self.pick(['float', 'num', 'int']), outer_p=0)
                if c:
                    self.tags.add('within_group')
                    fn = self.pick(['percentile_disc(0.5)', 'percentile_cont(0.25)'])
                    outs.append(Out('%s WITHIN GROUP (ORDER BY %s)' % (fn, c[0]), Col('pct', 'any')))
            if groups:
                if self.chance(0.3):
                    group_sql = ' GROUP BY ' + ', '.join(str(i + 1) for i in groups)
                else:
                    group_sql = ' GROUP BY ' + ', '.join(outs[i].sql for i in groups)
                if not want and not in_setop and self.chance(0.1):
                    # the extra rows' NULLs can coincide with NULL group values: no key
                    self.tags.add('grouping_sets')
                    g = [outs[i].sql for i in groups]
                    group_sql = ' GROUP BY ' + self.pick([
                        'ROLLUP (%s)' % ', '.join(g), 'CUBE (%s)' % ', '.join(g),
                        'GROUPING SETS ((%s), ())' % ', '.join(g)])
                    groups = None
            elif not any(o.col.name != 'agg' and o.col.type != 'arr' and o.col.name != 'cnt' for o in outs):
                pass
            key = groups
            if self.chance(0.3):
                t = self.pick(['int', 'num', 'text', 'float'])
                agg = self.agg_for(inner, t)
                having = ' HAVING %s %s %s' % (agg, self.pick(['>', '<', '>=', '<>']), self.lit(t)) \
                    if t != 'text' else ' HAVING %s IS NOT NULL' % agg
                if not group_sql and not groups:
                    pass
        else:
            if want:
                for t in want:
                    if self.chance(0.7):
                        c = self.col_ref(inner, t, outer_p=0.05)
                        if c:
                            outs.append(Out(c[0], Col(c[1].name, t, c[1].kind), c[2]))
                            continue
                    sql, kind = self.expr(inner, t)
                    outs.append(Out(sql, Col('e', t, kind)))
            elif rels and not has_using and self.chance(0.1) and mode == 'plain':
                self.tags.add('star')
                target = rels if self.chance(0.6) else [self.pick(rels)]
                star = '*' if target is rels else '%s.*' % target[0].alias
                for rel in target:
                    for c in rel.cols:
                        outs.append(Out(None, c, (rel.alias, c.name)))
                outs.append(Out(star, None))  # marker: the star replaces the listed outputs
            else:
                for _ in range(r.randint(1, 4)):
                    x = r.random()
                    c = self.col_ref(inner, None, outer_p=0.05) if x < 0.6 and rels else None
                    if c:
                        outs.append(Out(c[0], c[1], c[2]))
                    elif x < 0.72 and mode == 'plain':
                        t = self.pick(['int', 'text', 'num', 'float'])
                        outs.append(Out(self.scalar_subquery(inner, t), Col('s', t)))
                    elif x < 0.75 and mode == 'plain':
                        outs.append(Out(self.array_subquery(inner), Col('arr', 'arr')))
                    else:
                        t = self.pick(TYPES)
                        sql, kind = self.expr(inner, t)
                        outs.append(Out(sql, Col('e', t, kind)))
            # the rels' keys, when all are projected as plain columns, give a key
            star = outs and outs[-1].col is None
            srcs = {o.src: i for i, o in enumerate(outs) if o.src}
            if rels and all(rel.key for rel in rels):
                need = [(rel.alias, k) for rel in rels for k in rel.key]
                if not star and not want and mode == 'plain' and not all(n in srcs for n in need) and self.chance(0.5):
                    for rel in rels:
                        for k in rel.key:
                            if (rel.alias, k) not in srcs:
                                outs.append(Out('%s.%s' % (rel.alias, k), rel.col(k), (rel.alias, k)))
                                srcs[(rel.alias, k)] = len(outs) - 1
                if all(n in srcs for n in need):
                    key = [srcs[n] for n in need]
            if no_from:
                key = []
            if mode in ('distinct', 'distinct_on'):
                key = None
            # window functions
            part = self.col_ref(inner, None, outer_p=0)
            if part and not want and not star and mode == 'plain' and rels and self.chance(0.15):
                self.tags.add('window')
                keyexprs = None
                if all(rel.key for rel in rels):
                    keyexprs = ', '.join('%s.%s' % (rel.alias, k) for rel in rels for k in rel.key)
                opts = ['rank() OVER (ORDER BY %s)' % part[0],
                        'dense_rank() OVER (PARTITION BY %s ORDER BY %s DESC)' % (part[0], self.col_ref(inner, None, outer_p=0)[0]),
                        'count(*) OVER (PARTITION BY %s)' % part[0]]
                num = self.col_ref(inner, self.pick(['num', 'int', 'float']), outer_p=0)
                if num:
                    opts.append('sum(%s) OVER (PARTITION BY %s)' % (num[0], part[0]))
                if keyexprs:
                    opts += ['row_number() OVER (PARTITION BY %s ORDER BY %s)' % (part[0], keyexprs),
                             'lag(%s) OVER (ORDER BY %s)' % (part[0], keyexprs),
                             'row_number() OVER (ORDER BY %s DESC)' % keyexprs]
                    if num:
                        opts.append('sum(%s) OVER (ORDER BY %s ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)'
                                    % (num[0], keyexprs))
                w = self.pick(opts)
                if self.chance(0.25) and ' OVER (' in w:
                    # the same window through a WINDOW clause
                    self.tags.add('window_clause')
                    head, spec = w.split(' OVER (', 1)
                    self.window_clause = ' WINDOW ww AS (%s' % spec
                    w = head + ' OVER ww'
                wtype = 'num' if w.startswith('sum(') and num[1].type == 'num' else \
                    'float' if w.startswith('sum(') and num[1].type == 'float' else \
                    part[1].type if w.startswith('lag') else 'int'  # sum(int) is bigint: 'int'

                outs.append(Out(w, Col('win', wtype)))
        # select list text
        items = []
        if outs and outs[-1].col is None:
            items = [outs[-1].sql]
            outs = outs[:-1]
            if named:
                # derived tables need unique column names: replace the star
                items = []
                for i, o in enumerate(outs):
                    items.append('%s.%s AS c%d' % (o.src[0], o.src[1], i))
        else:
            for i, o in enumerate(outs):
                if named:
                    items.append('%s AS c%d' % (o.sql, i))
                elif self.chance(0.2):
                    items.append('%s AS %s' % (o.sql, self.pick(['x', 'y', 'val', '"Mixed Case"', 'z%d' % i])))
                else:
                    items.append(o.sql)
        if not items:
            items = ['count(*)']
            outs = [Out('count(*)', Col('count', 'int'))]
            key = []
        cols = [Col('c%d' % i, o.col.type, o.col.kind) for i, o in enumerate(outs)] if named else \
            [Col(o.col.name, o.col.type, o.col.kind) for o in outs]
        distinct = ''
        order = ''
        ordered = False
        if mode == 'distinct':
            self.tags.add('distinct')
            distinct = 'DISTINCT '
            key = list(range(len(outs)))
        elif mode == 'distinct_on' and key is not None and outs and outs[0].src:
            self.tags.add('distinct_on')
            distinct = 'DISTINCT ON (%s) ' % outs[0].sql
            order = ' ORDER BY %s' % ', '.join([outs[0].sql] + ['%d' % (i + 1) for i in key])
            key = [0]
            ordered = top
        where = list(conds)
        if self.chance(0.7) and (rels or self.chance(0.3)):
            where.append(self.pred(inner))
        sql = 'SELECT %s%s' % (distinct, ', '.join(items))
        if from_sql:
            sql += ' FROM ' + from_sql
        if where:
            sql += ' WHERE ' + ' AND '.join(where)
        sql += group_sql + having + self.window_clause
        self.window_clause = saved_window
        if not in_setop and not order and key is None and outs and not distinct and \
                (top or depth > 0) and self.chance(0.05):
            # WITH TIES: every row tied with the last one is returned, so the set is determined
            self.tags.add('with_ties')
            order = ' ORDER BY %d FETCH FIRST %d ROWS WITH TIES' % (self.r.randrange(len(outs)) + 1, self.r.randint(1, 4))
        if not in_setop and not order:
            if key is not None and (top or named or depth > 0) and self.chance(0.45):
                lead = []
                if outs and self.chance(0.3):
                    lead = [self.r.randrange(len(outs))]
                terms = ['%d%s' % (i + 1, self.pick(['', ' DESC', ' NULLS FIRST', ' DESC NULLS LAST']))
                         for i in lead + key]
                if terms:
                    order = ' ORDER BY ' + ', '.join(terms)
                    ordered = top
                if terms and mode == 'plain' and self.chance(0.08):
                    # a subquery in ORDER BY before the key (the key keeps the order total)
                    self.tags.add('order_by_subquery')
                    order = ' ORDER BY %s, %s' % (self.scalar_subquery(inner, 'int'), order[len(' ORDER BY '):])
                if self.chance(0.5):
                    if self.chance(0.1):
                        self.tags.add('limit_subquery')
                        order += ' LIMIT (SELECT count(*) FROM %s)' % self.base_table(set(), global_p=0.3)[0]
                    else:
                        order += ' LIMIT %d' % self.r.randint(1, 8)
                    if self.chance(0.3):
                        order += ' OFFSET %d' % self.r.randint(1, 3)
                    self.tags.add('limit')
            elif top and outs and self.chance(0.1):
                order = ' ORDER BY 1'  # not total: compared as a multiset
        sql += order
        if top and mode == 'plain' and not group_sql and rels and all(r_.table in TENANT_TABLES for r_ in rels) \
                and not distinct and 'win' not in [c.name for c in cols] and self.chance(0.03) \
                and not any(tag.startswith('join:') and tag not in ('join:join', 'join:inner') for tag in self.tags):
            of = (' OF %s' % self.pick(rels).alias) if self.chance(0.5) else ''
            sql += ' FOR %s%s%s' % (self.pick(['UPDATE', 'SHARE', 'NO KEY UPDATE']), of,
                                   self.pick(['', '', ' NOWAIT', ' SKIP LOCKED']))
            self.tags.add('for_update')
        return Query(sql, cols, key, ordered)

    # -- writes ------------------------------------------------------------------------------

    def target(self, table=None, alias_p=0.5):
        table = table or self.pick(TENANT_TABLES)
        cols, key, _ = TABLE_DEFS[table]
        if self.chance(alias_p):
            alias = self.new_alias(table[0])
            return '%s %s%s' % (table, self.pick(['', 'AS ']), alias), Rel(alias, cols, key, table)
        return table, Rel(table, cols, key, table)

    def value_for(self, scope, table, colname):
        c = TABLE_DEFS[table][0]
        col = [x for x in c if x.name == colname][0]
        x = self.r.random()
        if x < 0.45:
            return self.lit(col.type, col.kind)
        if x < 0.52:
            return 'NULL'
        if x < 0.62 and scope is not None:
            return self.scalar_subquery(scope, col.type)
        if scope is not None:
            return self.expr(scope, col.type)[0]
        return self.lit(col.type, col.kind)

    def returning(self, rel, target_only=False):
        """RETURNING list. With UPDATE ... FROM / DELETE ... USING only the target's columns:
        when several FROM rows match a target row, PostgreSQL picks one of them arbitrarily."""
        if not self.chance(0.3):
            return ''
        self.tags.add('returning')
        if self.chance(0.3):
            return ' RETURNING %s' % ('%s.*' % rel.alias if target_only else '*')
        cols = self.r.sample(rel.cols, self.r.randint(1, len(rel.cols)))
        items = ['%s.%s' % (rel.alias, c.name) for c in cols]
        if self.chance(0.15):
            self.tags.add('returning_subquery')
            items.append(self.scalar_subquery(Scope([[rel]]), self.pick(['int', 'text'])))
        return ' RETURNING ' + ', '.join(items)

    def update(self):
        self.tags.add('update')
        tsql, trel = self.target()
        table = trel.table
        scope = Scope([[trel]])
        from_sql = ''
        where = []
        set_scope = scope
        if self.chance(0.3):
            self.tags.add('update_from')
            self.has_using = False
            fsql, frels, conds = self.from_clause(Scope(), 1, {})
            from_sql = ' FROM ' + fsql
            where += conds
            scope = Scope([[trel] + frels])
            # join to a FROM table's key: then each target row meets at most one FROM row, and
            # SET may use the FROM columns deterministically
            keyed = [(fr, fr.col(fr.key[0])) for fr in frels if fr.key and len(fr.key) == 1 and len(frels) == 1]
            tcols = {c.kind: c for c in trel.cols if c.kind}
            keyed = [(fr, kc) for fr, kc in keyed if kc.kind in tcols]
            if keyed and self.chance(0.6):
                fr, kc = keyed[0]
                where.append('%s.%s = %s.%s' % (fr.alias, kc.name, trel.alias, tcols[kc.kind].name))
                set_scope = scope
            else:
                corr = self.correlation([trel], Scope([frels]))
                if corr:
                    where.append(corr)
        cols = self.r.sample(SETTABLE[table], self.r.randint(1, len(SETTABLE[table])))
        if len(cols) >= 2 and self.chance(0.1):
            self.tags.add('multiassign')
            a, b = cols[:2]
            ta = trel.col(a).type
            tb = trel.col(b).type
            sets = ['(%s, %s) = (SELECT %s, %s)' % (a, b, self.expr(set_scope, ta)[0], self.expr(set_scope, tb)[0])]
        else:
            sets = []
            for c in cols:
                if self.chance(0.05):
                    sets.append('%s = DEFAULT' % c)
                else:
                    sets.append('%s = %s' % (c, self.value_for(set_scope, table, c)))
        if self.chance(0.9):
            where.append(self.pred(scope))
        sql = 'UPDATE %s SET %s%s' % (tsql, ', '.join(sets), from_sql)
        if where:
            sql += ' WHERE ' + ' AND '.join(where)
        return sql + self.returning(trel, target_only=bool(from_sql))

    def delete(self):
        self.tags.add('delete')
        tsql, trel = self.target()
        scope = Scope([[trel]])
        using = ''
        where = []
        if self.chance(0.3):
            self.tags.add('delete_using')
            self.has_using = False
            fsql, frels, conds = self.from_clause(Scope(), 1, {})
            using = ' USING ' + fsql
            where += conds
            corr = self.correlation([trel], Scope([frels]))
            if corr:
                where.append(corr)
            scope = Scope([[trel] + frels])
        # deletes are kept selective, so that the tables do not empty too fast
        where.append(self.pred(scope))
        if self.chance(0.7):
            where.append(self.pred(scope))
        return 'DELETE FROM %s%s WHERE %s%s' % (tsql, using, ' AND '.join(where),
                                                self.returning(trel, target_only=bool(using)))

    def insert_cols(self, table, tenant_p=0.15):
        cols = ['id'] + self.r.sample(SETTABLE[table], self.r.randint(0, len(SETTABLE[table])))
        self.r.shuffle(cols)
        with_tenant = self.chance(tenant_p)
        if with_tenant:
            cols.insert(self.r.randint(0, len(cols)), 'tenant_id')
            self.tags.add('insert_tenant_col')
        return cols

    def tenant_value(self):
        return self.pick([str(self.T), "'%d'" % self.T])

    def on_conflict(self, table, trel, cols):
        # projects' key is (id) alone: rowguard refuses ON CONFLICT on it (its arbiter would meet
        # other tenants' rows; tests/adversarial/sql_keys_test.cc), so none is generated there.
        if table == 'projects' or not self.chance(0.35):
            return ''
        if self.chance(0.35):
            self.tags.add('on_conflict_nothing')
            target = self.pick(['', ' (tenant_id, id)'])
            return ' ON CONFLICT%s DO NOTHING' % target
        self.tags.add('on_conflict_update')
        target = self.pick([' (tenant_id, id)', ' (id, tenant_id)', ' ON CONSTRAINT %s_pkey' % table])
        sets = []
        for c in self.r.sample(SETTABLE[table], self.r.randint(1, len(SETTABLE[table]))):
            if c in cols and self.chance(0.6):
                sets.append('%s = EXCLUDED.%s' % (c, c))
            else:
                sets.append('%s = %s' % (c, self.value_for(Scope([[trel]]), table, c)))
        sql = ' ON CONFLICT%s DO UPDATE SET %s' % (target, ', '.join(sets))
        if self.chance(0.3):
            sql += ' WHERE %s' % self.pred(Scope([[trel]]), 1)
        return sql

    def insert_values(self):
        self.tags.add('insert_values')
        table = self.pick(TENANT_TABLES)
        tsql, trel = self.target(table, alias_p=0.15)
        if ' ' in tsql:
            tsql = '%s AS %s' % (table, trel.alias)  # INSERT needs AS for an alias
        cols = self.insert_cols(table)
        no_list = self.chance(0.1)
        if no_list:
            # the table's first columns in order (rowguard writes the list out from its schema
            # snapshot, and checks the value landing on tenant_id)
            self.tags.add('insert_no_column_list')
            names = [c.name for c in TABLE_DEFS[table][0]]
            cols = names[:self.r.randint(1, len(names))]
        conflict = self.on_conflict(table, trel, cols)
        rows = []
        for _ in range(self.r.randint(1, 3)):
            vals = []
            for c in cols:
                if c == 'tenant_id':
                    if self.chance(0.1):
                        self.tags.add('insert_tenant_default')
                        vals.append('DEFAULT')  # rowguard fills in the tenant; oracle_ref_T's default is T
                    else:
                        vals.append(self.tenant_value())
                elif c == 'id':
                    if conflict and self.chance(0.6):
                        # an existing id of this tenant (for projects: only the tenant's own range)
                        base = project_base(self.T) if table == 'projects' else 0
                        vals.append(str(base + self.r.randint(1, 12)))
                    else:
                        vals.append(str(self.new_id(table)))
                elif self.chance(0.05):
                    vals.append('DEFAULT')
                else:
                    vals.append(self.value_for(Scope([[]]) if self.chance(0.8) else None, table, c))
            rows.append('(%s)' % ', '.join(vals))
        collist = '' if no_list else ' (%s)' % ', '.join(cols)
        return 'INSERT INTO %s%s VALUES %s%s%s' % (tsql, collist, ', '.join(rows), conflict, self.returning(trel))

    def insert_select(self):
        self.tags.add('insert_select')
        table = self.pick(TENANT_TABLES)
        tsql, trel = self.target(table, alias_p=0.0)
        cols = self.insert_cols(table, tenant_p=0.12)
        self.has_using = False
        ctes = {}
        with_sql = ''
        if self.chance(0.12):
            with_sql, ctes = self.with_clause(Scope(), 1, {})
        self.cur_ctes = ctes
        from_sql, rels, conds = self.from_clause(Scope(), 1, ctes)
        scope = Scope([rels])
        conflict = self.on_conflict(table, trel, cols)
        items = []
        unique_ids = False
        for c in cols:
            if c == 'tenant_id':
                items.append(self.tenant_value())
            elif c == 'id':
                ints = self.cands(rels, 'int')
                keyed = [(rel, rel.col(rel.key[0])) for rel in rels
                         if rel.key and len(rel.key) == 1 and rel.col(rel.key[0]).type == 'int']
                src = self.pick(keyed) if keyed and self.chance(0.8) else (self.pick(ints) if ints else None)
                unique_ids = bool(src and len(rels) == 1 and src in keyed and table != 'projects')
                x = '%s.%s' % (src[0].alias, src[1].name) if src else str(self.new_id(table))
                if table == 'projects':
                    items.append(self.project_id_expr(x))
                elif conflict and self.chance(0.5):
                    items.append(x)  # the source's own ids: conflicts with the tenant's rows
                else:
                    items.append('%s + %d' % (x, 1000 * self.fresh('offset')))
            else:
                tcol = trel.col(c)
                got = self.col_ref(scope, tcol.type, tcol.kind) if self.chance(0.6) else None
                items.append(got[0] if got else self.expr(scope, tcol.type)[0])
        if 'DO NOTHING' in conflict and not unique_ids:
            # two source rows with the same new id: which one DO NOTHING keeps depends on the
            # plan's row order, so the comparison would be meaningless; without ON CONFLICT the
            # duplicate is a unique violation on both sides
            conflict = ''
        where = list(conds)
        if self.chance(0.7):
            where.append(self.pred(scope))
        head = 'SELECT %s%s FROM %s' % (self.pick(['', '', '', 'DISTINCT ']), ', '.join(items), from_sql)
        src = head + (' WHERE ' + ' AND '.join(where) if where else '')
        if where and self.chance(0.08):
            # a set operation as the source: the rows where the condition holds, then the others
            self.tags.add('insert_setop')
            src = '%s UNION ALL %s WHERE NOT (%s)' % (src, head, ' AND '.join(where))
        self.cur_ctes = {}
        return '%sINSERT INTO %s (%s) %s%s%s' % (with_sql, tsql, ', '.join(cols), src, conflict,
                                                 self.returning(trel))

    def merge(self):
        self.tags.add('merge')
        table = self.pick(TENANT_TABLES)
        tsql, trel = self.target(table, alias_p=0.7)
        # the source
        self.has_using = False
        x = self.r.random()
        if x < 0.35:
            sql, srel = self.base_table(set(), global_p=0.15)
            src_sql, srels = sql, [srel]
        elif x < 0.75:
            q = self.select(Scope(), 1, named=True)
            alias = self.new_alias('s')
            src_sql = '(%s) AS %s' % (q.sql, alias)
            srels = [Rel(alias, q.cols, [q.cols[i].name for i in q.key] if q.key else None)]
        elif x < 0.85:
            self.tags.add('values')
            alias = self.new_alias('s')
            rows = ', '.join('(%s, %s)' % (self.lit('int', TABLE_DEFS[table][0][0].kind),
                                           self.lit('text')) for _ in range(self.r.randint(1, 3)))
            src_sql = '(VALUES %s) AS %s (id, label)' % (rows, alias)
            srels = [Rel(alias, [Col('id', 'int', TABLE_DEFS[table][0][0].kind), Col('label', 'text', 'name')])]
        else:
            src_sql, srels = self.join_tree(Scope(), 1, {}, 2, set())
        pairs = [(sr, sc, tc) for sr, sc in self.cands(srels) for tc in trel.cols
                 if sc.kind and sc.kind == tc.kind and sc.kind != 'bool']
        if pairs:
            sr, sc, tc = self.pick(pairs)
            on = '%s.%s = %s.%s' % (trel.alias, tc.name, sr.alias, sc.name)
        else:
            on = 'false'
        both = Scope([[trel] + srels])
        if self.chance(0.2):
            on += ' AND ' + self.pred(both, 1)
        clauses = []
        # conditional clauses first, then at most one unconditional per branch
        for _ in range(self.r.randint(0, 2)):
            kind = self.pick(['update', 'delete', 'nothing'])
            clauses.append(('MATCHED', self.pred(both, 1), kind))
        if self.chance(0.7):
            clauses.append(('MATCHED', None, self.pick(['update', 'update', 'delete', 'nothing'])))
        if self.chance(0.75):
            clauses.append(('NOT MATCHED', self.pred(Scope([srels]), 1) if self.chance(0.3) else None, 'insert'))
        if not clauses:
            clauses.append(('MATCHED', None, 'update'))
        parts = []
        for when, cond, kind in clauses:
            head = 'WHEN %s%s THEN ' % (when, ' AND %s' % cond if cond else '')
            if kind == 'update':
                cs = self.r.sample(SETTABLE[table], self.r.randint(1, len(SETTABLE[table])))
                parts.append(head + 'UPDATE SET ' + ', '.join('%s = %s' % (c, self.value_for(both, table, c)) for c in cs))
            elif kind == 'delete':
                parts.append(head + 'DELETE')
            elif kind == 'nothing':
                parts.append(head + 'DO NOTHING')
            else:
                cols = self.insert_cols(table)
                sscope = Scope([srels])
                vals = []
                for c in cols:
                    if c == 'tenant_id':
                        vals.append(self.tenant_value())
                    elif c == 'id':
                        ints = self.cands(srels, 'int')
                        x = '%s.%s' % (lambda p: (p[0].alias, p[1].name))(self.pick(ints)) if ints else str(self.new_id(table))
                        if table == 'projects':
                            vals.append(self.project_id_expr(x))
                        else:
                            vals.append('%s + %d' % (x, 1000 * self.fresh('offset')))
                    else:
                        tcol = trel.col(c)
                        got = self.col_ref(sscope, tcol.type, tcol.kind) if self.chance(0.5) else None
                        vals.append(got[0] if got else self.lit(tcol.type, tcol.kind))
                parts.append(head + 'INSERT (%s) VALUES (%s)' % (', '.join(cols), ', '.join(vals)))
        return 'MERGE INTO %s USING %s ON %s %s' % (tsql, src_sql, on, ' '.join(parts))

    def dml_cte(self):
        self.tags.add('dml_cte')
        name = self.new_alias('m')
        what = self.pick(['delete', 'update', 'insert'])
        body = {'delete': self.delete, 'update': self.update, 'insert': self.insert_values}[what]()
        if ' RETURNING ' not in body:
            body += ' RETURNING *'
        table = re.match(r'(?:DELETE FROM|UPDATE|INSERT INTO) (\w+)', body).group(1)
        cols = TABLE_DEFS[table][0]
        if self.chance(0.25) and table != 'projects' and 'RETURNING *' in body:
            # move the returned rows into a copy
            c = [x.name for x in cols if x.name not in ('tenant_id',)]
            items = ['id + %d' % (1000 * self.fresh('offset')) if x == 'id' else x for x in c]
            return 'WITH %s AS (%s) INSERT INTO %s (%s) SELECT %s FROM %s' % (
                name, body, table, ', '.join(c), ', '.join(items), name)
        if 'RETURNING *' in body:
            agg = 'count(*), max(id)'
        else:
            agg = 'count(*)'
        return 'WITH %s AS (%s) SELECT %s FROM %s' % (name, body, agg, name)

    # -- statements that must be denied (or fail) -------------------------------------------------

    def probe(self):
        other = self.pick([u for u in TENANTS if u != self.T])
        kind = self.pick(['insert_other', 'update_tenant', 'insert_select_col', 'write_global', 'merge_other',
                          'conflict_tenant'])
        self.tags.add('probe:' + kind)
        if kind == 'insert_other':
            return 'INSERT INTO accounts (id, tenant_id, name) VALUES (%d, %d, %s)' % (
                self.new_id('accounts'), other, sql_str('probe'))
        if kind == 'update_tenant':
            table = self.pick(TENANT_TABLES)
            return 'UPDATE %s SET tenant_id = %d WHERE id = %s' % (table, other, self.lit('int', TABLE_DEFS[table][0][0].kind))
        if kind == 'insert_select_col':
            return ('INSERT INTO tasks (id, tenant_id, project_id) SELECT id + %d, tenant_id, project_id FROM tasks'
                    % (1000 * self.fresh('offset')))
        if kind == 'write_global':
            return self.pick(["UPDATE regions SET name = 'probe' WHERE code = 'eu'",
                              "DELETE FROM statuses WHERE code = 'draft'",
                              "INSERT INTO regions (code, name) VALUES ('zz%d', 'probe')" % self.fresh('g')])
        if kind == 'merge_other':
            return ('MERGE INTO accounts a USING (VALUES (%d)) AS s (id) ON a.id = s.id '
                    'WHEN NOT MATCHED THEN INSERT (id, tenant_id) VALUES (s.id, %d)' % (self.new_id('accounts'), other))
        return ('INSERT INTO accounts (id, name) VALUES (1, %s) ON CONFLICT (tenant_id, id) DO UPDATE '
                'SET tenant_id = %d' % (sql_str('probe'), other))

    # -- one statement -----------------------------------------------------------------------

    def statement(self):
        """(sql, is_write, ordered, is_probe)."""
        self.tags = set()
        self.n = 0
        self.crossed = False
        self.cte_refs = {}
        self.cur_ctes = {}
        self.has_using = False
        kind = self.weighted([('select', 56), ('update', 10), ('delete', 6), ('insert_values', 9),
                              ('insert_select', 7), ('merge', 6), ('dml_cte', 3), ('probe', 2)])
        if kind == 'select' and self.chance(0.01):
            self.tags.add('table_stmt')
            return 'TABLE %s' % self.pick(['accounts', 'projects', 'tasks', 'regions']), False, False, False
        if kind == 'select':
            self.tags.add('select')
            q = self.select(Scope(), 0, top=True)
            return q.sql, False, q.ordered, False
        if kind == 'probe':
            return self.probe(), True, False, True
        return getattr(self, kind)(), True, False, False


# ---------------------------------------------------------------------------------------------
# Running and comparing

class Outcome:
    def __init__(self, ok, rows=None, desc=None, status=None, code=None, msg=None):
        self.ok, self.rows, self.desc, self.status, self.code, self.msg = ok, rows, desc, status, code, msg

    def denied(self):
        return not self.ok and self.code == '42501'

    def show(self, limit=8):
        if not self.ok:
            return 'ERROR %s: %s' % (self.code, (self.msg or '').strip().splitlines()[0] if self.msg else '')
        if self.desc is None:
            return self.status
        rows = self.rows or []
        text = '%s; columns %s; %d rows' % (self.status, [d[0] for d in self.desc], len(rows))
        for row in rows[:limit]:
            text += '\n      %s' % (row,)
        if len(rows) > limit:
            text += '\n      ...'
        return text


class Fatal(Exception):
    pass


def execute(conn, sql):
    cur = conn.cursor()
    try:
        cur.execute(sql)
        rows = cur.fetchall() if cur.description else None
        desc = [(d.name, d.type_code) for d in cur.description] if cur.description else None
        return Outcome(True, rows, desc, cur.statusmessage)
    except psycopg2.Error as e:
        if e.pgcode is None:
            raise Fatal('connection problem: %s' % e)
        return Outcome(False, code=e.pgcode, msg=e.pgerror)
    finally:
        cur.close()


def norm(v):
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return ('f', str(v))
        return ('f', float('%.9g' % v))
    if isinstance(v, decimal.Decimal):
        return ('d', v.normalize() if v.is_finite() else str(v))
    if isinstance(v, (list, tuple)):
        return tuple(norm(x) for x in v)
    return v


def norm_rows(rows):
    return [tuple(norm(v) for v in row) for row in (rows or [])]


# Errors raised by a row's data: when a statement meets several such rows, which error comes
# first depends on the order the plan visits rows in, which differs between oracle_full and the
# smaller oracle_ref_T. Two different errors of this set count as agreement.
DATA_ERRORS = {'21000', '22012', '22003', '22P02', '23502', '23505', '23514', '2201F', '22023'}


TIMEOUT = '57014'


def timed_out(a, b):
    """A statement timeout on either side: the plans differ (oracle_full is three times larger),
    so one side may take much longer. Inconclusive: counted and printed, not a mismatch."""
    return (not a.ok and a.code == TIMEOUT) or (not b.ok and b.code == TIMEOUT)


def plan_dependent_error(a, b):
    """One side failed with a data error (division by zero, a scalar subquery returning several
    rows, ...) and the other side succeeded. Whether PostgreSQL evaluates an expression for a
    given row depends on the plan (join order, which side is hashed, whether an empty input
    short-circuits the other), and the plans differ because oracle_full holds three tenants' rows:
    so this is not by itself a rowguard bug. Counted and printed as a note, not a failure."""
    failed = a if not a.ok else b
    return a.ok != b.ok and (failed.code.startswith('22') or failed.code == '21000')


def compare(a, b, ordered):
    """None when outcome a (rowguard) and b (reference) agree, else a reason."""
    if a.ok and b.ok:
        if a.desc != b.desc:
            return 'result columns differ: %s vs %s' % (a.desc, b.desc)
        if a.status != b.status:
            return 'command tags differ: %r vs %r' % (a.status, b.status)
        ra, rb = norm_rows(a.rows), norm_rows(b.rows)
        if ordered:
            if ra != rb:
                return 'rows differ (ordered)'
        elif collections.Counter(ra) != collections.Counter(rb):
            return 'rows differ'
        return None
    if not a.ok and not b.ok:
        if a.code[:2] != b.code[:2] and not (a.code in DATA_ERRORS and b.code in DATA_ERRORS):
            return 'both failed, SQLSTATE class differs: %s vs %s' % (a.code, b.code)
        return None
    if a.ok:
        return 'rowguard succeeded, the reference failed'
    return 'rowguard failed (%s), the reference succeeded' % a.code


def row_diff(a, b, limit=6):
    ca, cb = collections.Counter(norm_rows(a.rows)), collections.Counter(norm_rows(b.rows))
    extra = list((ca - cb).elements())
    missing = list((cb - ca).elements())
    lines = []
    if extra:
        lines.append('    only through rowguard (%d): %s%s' % (len(extra), extra[:limit], ' ...' if len(extra) > limit else ''))
    if missing:
        lines.append('    only in the reference (%d): %s%s' % (len(missing), missing[:limit], ' ...' if len(missing) > limit else ''))
    return '\n'.join(lines)


def normalize_reason(msg):
    """A denial message without names and values, to group denials."""
    line = (msg or '').strip().splitlines()[0] if msg else ''
    line = re.sub(r'^ERROR:\s*', '', line)
    line = re.sub(r'"[^"]*"', '"…"', line)
    line = re.sub(r"'[^']*'", "'…'", line)
    return line[:160]


class Oracle:
    def __init__(self, args):
        self.args = args
        self.full_super = self.connect_super('oracle_full')
        self.refs = {t: self.connect_super('oracle_ref_%d' % t) for t in TENANTS}
        self.rg = {}
        for t in TENANTS:
            c = psycopg2.connect(host=args.rowguard_host, port=args.rowguard_port, user='t%d' % t,
                                 password='pw%d' % t, dbname='oracle_full', sslmode='disable', connect_timeout=10)
            c.autocommit = True
            self.rg[t] = c
            # JIT compiling costs up to seconds per statement on these tiny tables
            for setting in ('SET statement_timeout = %d' % args.statement_timeout, 'SET jit = off'):
                o = execute(c, setting)
                if not o.ok:
                    raise Fatal('%s through rowguard failed: %s' % (setting, o.show()))
        self.mismatches = []
        self.resets = 0
        self.stats = collections.Counter()
        self.denials = collections.Counter()
        self.denial_examples = {}
        self.denied_tags = collections.Counter()
        self.tag_counts = collections.Counter()
        self.error_codes = collections.Counter()
        self.known_skips = collections.Counter()
        self.probe_denied = collections.Counter()
        self.ref_sums = {}
        self.time_by_kind = collections.Counter()
        self.notes = collections.Counter()
        self.slowest = []

    def connect_super(self, db):
        c = psycopg2.connect(host=self.args.pg_socket_dir, port=self.args.pg_port, user=self.args.superuser,
                             dbname=db, connect_timeout=10,
                             options='-c statement_timeout=%d -c jit=off' % self.args.statement_timeout)
        c.autocommit = True
        return c

    # -- setup ---------------------------------------------------------------------------------

    def create_schema(self):
        for conn in [self.full_super] + list(self.refs.values()):
            with conn.cursor() as cur:
                cur.execute('SET client_min_messages = warning')
                cur.execute('DROP TABLE IF EXISTS accounts, projects, tasks, regions, statuses')
                cur.execute('SET ROLE %s' % self.args.app_role)
                cur.execute(SCHEMA)
                cur.execute('RESET ROLE')
        self.refresh_rowguard_schema()

    def refresh_rowguard_schema(self):
        """The tables were made behind rowguard's back: RELOAD on its admin console makes it read
        its schema snapshot again (ON CONFLICT is refused until it knows the keys); wait for it."""
        if not self.args.admin_user:
            return
        c = psycopg2.connect(host=self.args.rowguard_host, port=self.args.rowguard_port, user=self.args.admin_user,
                             password=self.args.admin_password, dbname='rowguard', sslmode='disable')
        c.autocommit = True
        try:
            with c.cursor() as cur:
                cur.execute('RELOAD')
                deadline = time.time() + 30
                while True:
                    cur.execute('SHOW SCHEMA')
                    cols = [d[0] for d in cur.description]
                    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
                    if rows and all(r['found'] == 'true' and r['last_read_reason'] == 'reload' for r in rows):
                        return
                    if time.time() > deadline:
                        raise RuntimeError('rowguard did not read the new schema: %r' % rows)
                    time.sleep(0.1)
        finally:
            c.close()

    def set_defaults(self):
        # On oracle_ref_T a tenant column left out of an INSERT is T: what rowguard fills in.
        for t in TENANTS:
            with self.refs[t].cursor() as cur:
                for table in TENANT_TABLES:
                    cur.execute('ALTER TABLE %s ALTER COLUMN tenant_id SET DEFAULT %d' % (table, t))

    def reset_data(self):
        data = make_data(self.args.seed + self.resets)
        self.resets += 1
        load_rows(self.full_super, TENANTS, data)
        for t in TENANTS:
            load_rows(self.refs[t], [t], data)
        self.counters = {t: {} for t in TENANTS}
        for t in TENANTS:
            self.ref_sums[t] = checksums(self.refs[t])
        self.check_state(None, None, None)

    # -- state checks ----------------------------------------------------------------------------

    def check_state(self, tenant, sql, index):
        """Tenant U's rows in oracle_full == oracle_ref_U, for every U. Returns a reason or None."""
        full = checksums(self.full_super)
        problems = []
        for u in TENANTS:
            expected = {k: v for k, v in self.ref_sums[u].items()}
            got = {k: v for k, v in full.items() if k[1] == u or k[1] is None}
            # the reference's rows all belong to u: key them by u
            exp = {}
            for (tbl, ten), v in expected.items():
                exp[(tbl, ten)] = v
            if got != exp:
                diff = sorted(set(k for k in set(got) | set(exp) if got.get(k) != exp.get(k)), key=str)
                problems.append('tenant %d: %s' % (u, ', '.join('%s/%s full=%s ref=%s' % (
                    k[0], k[1], got.get(k, (0, '-'))[0], exp.get(k, (0, '-'))[0]) for k in diff)))
        if problems:
            if tenant is None:
                raise Fatal('databases differ right after loading: %s' % problems)
            return '; '.join(problems)
        return None

    def table_rows(self, conn, table, tenant=None):
        with conn.cursor() as cur:
            where = ' WHERE tenant_id = %d' % tenant if tenant is not None else ''
            cur.execute('SELECT * FROM %s%s ORDER BY 1, 2' % (table, where))
            return cur.fetchall()

    def state_diff(self, tenant):
        lines = []
        for table in TENANT_TABLES:
            a = collections.Counter(self.table_rows(self.full_super, table, tenant))
            b = collections.Counter(self.table_rows(self.refs[tenant], table))
            if a != b:
                lines.append('    %s: only in oracle_full %s; only in oracle_ref_%d %s' % (
                    table, list((a - b).elements())[:6], tenant, list((b - a).elements())[:6]))
        return '\n'.join(lines)

    # -- one statement -----------------------------------------------------------------------

    def report(self, index, tenant, sql, reason, a, b, extra=''):
        self.mismatches.append((index, tenant, sql, reason))
        print('\n=== MISMATCH #%d: statement %d as tenant %d (seed %d): %s' % (
            len(self.mismatches), index, tenant, self.args.seed, reason))
        print('  statement: %s' % sql)
        if a is not None:
            print('  rowguard : %s' % a.show().replace('\n', '\n  '))
        if b is not None:
            print('  reference: %s' % b.show().replace('\n', '\n  '))
        if a is not None and b is not None and a.ok and b.ok and a.rows is not None:
            d = row_diff(a, b)
            if d:
                print(d)
        if extra:
            print(extra)
        if self.args.mismatch_file:
            with open(self.args.mismatch_file, 'a') as f:
                f.write('%d\t%s\n' % (tenant, sql.replace('\n', ' ')))
        sys.stdout.flush()

    def run_one(self, index, tenant, sql, is_write, ordered, tags, probe):
        rg, ref = self.rg[tenant], self.refs[tenant]
        for tag in tags:
            self.tag_counts[tag] += 1
        if not is_write:
            a = execute(rg, sql)
            if a.denied():
                return self.denied(sql, a, tags, probe, ref)
            b = execute(ref, sql)
            reason = compare(a, b, ordered)
            self.count_outcome(a, b)
            if timed_out(a, b):
                return self.timeout(index, tenant, sql, a, b)
            if reason and plan_dependent_error(a, b):
                return self.note(index, tenant, sql, reason, a, b)
            if reason:
                self.report(index, tenant, sql, reason, a, b)
            return
        execute(rg, 'BEGIN')
        a = execute(rg, sql)
        if a.denied():
            execute(rg, 'ROLLBACK')
            return self.denied(sql, a, tags, probe, ref)
        execute(ref, 'BEGIN')
        b = execute(ref, sql)
        reason = compare(a, b, False)
        self.count_outcome(a, b)
        if probe:
            self.stats['probe_not_denied'] += 1
        if reason or not a.ok:
            execute(rg, 'ROLLBACK')
            execute(ref, 'ROLLBACK')
            if timed_out(a, b):
                return self.timeout(index, tenant, sql, a, b)
            if reason and plan_dependent_error(a, b):
                return self.note(index, tenant, sql, reason, a, b)
            if reason:
                self.report(index, tenant, sql, reason, a, b)
            return
        ca, cb = execute(rg, 'COMMIT'), execute(ref, 'COMMIT')
        if not (ca.ok and cb.ok and ca.status == cb.status):
            self.report(index, tenant, sql, 'COMMIT differs: %s vs %s' % (ca.show(), cb.show()), a, b)
        self.stats['writes_committed'] += 1
        self.ref_sums[tenant] = checksums(ref)
        problem = self.check_state(tenant, sql, index)
        if problem:
            self.report(index, tenant, sql, 'table contents differ after the write: ' + problem, a, b,
                        self.state_diff(tenant))
            self.reset_data()  # back in sync

    def timeout(self, index, tenant, sql, a, b):
        self.stats['timeouts'] += 1
        if self.stats['timeouts'] <= 3:
            print('\nNOTE (statement timeout, inconclusive): statement %d as tenant %d\n  statement: %s'
                  '\n  rowguard : %s\n  reference: %s' % (index, tenant, sql, a.show(2), b.show(2)))

    def note(self, index, tenant, sql, reason, a, b):
        side = 'rowguard' if not a.ok else 'reference'
        self.notes[side] += 1
        if self.notes[side] <= 3:
            print('\nNOTE (plan-dependent data error, not counted as a mismatch): statement %d as tenant %d: %s'
                  '\n  statement: %s\n  rowguard : %s\n  reference: %s' % (
                      index, tenant, reason, sql, a.show(2).replace('\n', '\n  '), b.show(2).replace('\n', '\n  ')))

    def count_outcome(self, a, b):
        if a.ok and b.ok:
            self.stats['both_ok'] += 1
        elif not a.ok and not b.ok:
            self.stats['both_failed'] += 1
            self.error_codes[b.code] += 1

    def denied(self, sql, a, tags, probe, ref):
        self.stats['denied'] += 1
        if probe:
            self.stats['probe_denied'] += 1
            self.probe_denied[[t for t in tags if t.startswith('probe:')][0]] += 1
            return
        self.stats['denied_non_probe'] += 1
        # Would the statement have worked? (run on the reference and rolled back)
        execute(ref, 'BEGIN')
        b = execute(ref, sql)
        execute(ref, 'ROLLBACK')
        if not b.ok:
            self.stats['denied_ref_fails_too'] += 1
            if b.code == '42601':
                print('NOTE: the generator wrote a statement with a syntax error: %s\n  %s' % (sql, b.show()))
        reason = normalize_reason(a.msg)
        self.denials[reason] += 1
        if reason not in self.denial_examples or len(sql) < len(self.denial_examples[reason]):
            self.denial_examples[reason] = sql
        for tag in tags:
            self.denied_tags[tag] += 1

    # -- main loops --------------------------------------------------------------------------

    def known_bug(self, sql):
        if self.args.no_known_bugs:
            return None
        for bug in KNOWN_BUGS:
            if bug['match'](sql):
                return bug
        return None

    def run(self):
        self.create_schema()
        self.set_defaults()
        self.reset_data()
        rng = random.Random(self.args.seed)
        start = time.time()
        last_progress = start
        n = self.args.statements
        for i in range(n):
            tenant = TENANTS[i % len(TENANTS)]
            if i and i % self.args.reset_every == 0:
                self.reset_data()
            gen = Gen(rng, tenant, self.counters)
            sql, is_write, ordered, probe = gen.statement()
            bug = self.known_bug(sql)
            if bug:
                self.known_skips[bug['name']] += 1
                print('WARNING: skipped (known rowguard bug %s): %s' % (bug['name'], sql))
                if 'detail' in bug:
                    print('  %s' % bug['detail'](sql))
                continue
            self.stats['statements'] += 1
            self.stats['writes' if is_write else 'reads'] += 1
            t0 = time.time()
            self.run_one(i, tenant, sql, is_write, ordered, sorted(gen.tags), probe)
            took = time.time() - t0
            self.time_by_kind[('write' if is_write else 'read')] += took
            self.slowest.append((took, sql))
            if len(self.slowest) > 200:
                self.slowest.sort(reverse=True)
                del self.slowest[30:]
            if time.time() - last_progress > 30:
                last_progress = time.time()
                print('... %d/%d statements, %d mismatches, %.0f s' % (i + 1, n, len(self.mismatches),
                                                                       time.time() - start))
                sys.stdout.flush()
            if len(self.mismatches) >= self.args.max_mismatches:
                print('stopping: %d mismatches' % len(self.mismatches))
                break
        self.elapsed = time.time() - start
        return self.summary()

    def run_file(self, path):
        self.create_schema()
        self.set_defaults()
        self.reset_data()
        tenant = self.args.tenant
        for line in open(path):
            sql = line.strip()
            if not sql or sql.startswith('--'):
                continue
            is_write = bool(re.match(r'\s*(WITH\b.*\b(UPDATE|DELETE|INSERT)\b|UPDATE|DELETE|INSERT|MERGE)', sql, re.I | re.S))
            ordered = False
            print('\n--- as tenant %d: %s' % (tenant, sql))
            t0 = time.time()
            a = execute(self.rg[tenant], sql)
            t1 = time.time()
            b = execute(self.refs[tenant], sql) if not a.denied() else None
            print('  (%.3f s through rowguard, %.3f s on the reference)' % (t1 - t0, time.time() - t1))
            print('  rowguard : %s' % a.show(40).replace('\n', '\n  '))
            if b is not None:
                print('  reference: %s' % b.show(40).replace('\n', '\n  '))
                reason = compare(a, b, ordered)
                print('  => %s' % (reason or 'same'))
                if a.ok and b.ok and a.rows is not None:
                    d = row_diff(a, b, 40)
                    if d:
                        print(d)
                if is_write:
                    self.ref_sums[tenant] = checksums(self.refs[tenant])
                    problem = self.check_state(tenant, sql, 0)
                    print('  state: %s' % (problem or 'same'))
                    if problem:
                        print(self.state_diff(tenant))
                        self.reset_data()
        return 0

    def summary(self):
        s = self.stats
        total = s['statements']
        print('\n==== rowguard differential oracle: seed %d' % self.args.seed)
        print('statements run: %d (%d reads, %d writes; %d writes committed) in %.1f s; data reloaded %d times'
              % (total, s['reads'], s['writes'], s['writes_committed'], self.elapsed, self.resets))
        print('outcomes: both ok %d, both failed %d, denied by rowguard %d (%.1f%%; %d of them '
              'intentional tenant-column/global-table probes)' % (
                  s['both_ok'], s['both_failed'], s['denied'], 100.0 * s['denied'] / max(total, 1), s['probe_denied']))
        if self.error_codes:
            print('errors on both sides (reference SQLSTATE): %s' % ', '.join(
                '%s x%d' % kv for kv in self.error_codes.most_common(8)))
        if s['timeouts']:
            print('statements that timed out (after %d ms) on a side, inconclusive: %d'
                  % (self.args.statement_timeout, s['timeouts']))
        if self.notes:
            print('plan-dependent data errors on one side only (notes, not mismatches): rowguard side %d, '
                  'reference side %d' % (self.notes['rowguard'], self.notes['reference']))
        probes = s['probe_denied'] + s['probe_not_denied']
        print('probes (must be denied or fail): %d, denied %d %s' % (probes, s['probe_denied'], dict(self.probe_denied)))
        if self.denials:
            print('denials of ordinary statements: %d (%d of them fail on the reference database too)'
                  % (s['denied_non_probe'], s['denied_ref_fails_too']))
            print('denials of ordinary statements, by reason:')
            for reason, count in self.denials.most_common(20):
                print('  %5d  %s\n         e.g. %s' % (count, reason, self.denial_examples[reason][:300]))
            shown = ['%s %d/%d' % (t, self.denied_tags[t], self.tag_counts[t])
                     for t, _ in self.denied_tags.most_common(25)]
            print('denied ordinary statements by shape (denied/generated): %s' % ', '.join(shown))
        self.slowest.sort(reverse=True)
        print('time in reads %.1f s, in writes (with state checks) %.1f s; slowest statements:' % (
            self.time_by_kind['read'], self.time_by_kind['write']))
        for took, sql in self.slowest[:self.args.show_slowest]:
            print('  %.2f s  %s' % (took, sql if self.args.show_slowest > 3 else sql[:200]))
        for bug in KNOWN_BUGS:
            if self.known_skips[bug['name']]:
                print('WARNING: %d statements skipped for known rowguard bug %s: %s' % (
                    self.known_skips[bug['name']], bug['name'], bug['description']))
        rate = s['denied'] / max(total, 1)
        ok = True
        if self.mismatches:
            print('FAILED: %d mismatches (see above)' % len(self.mismatches))
            ok = False
        if rate > self.args.max_denial_rate:
            print('FAILED: denial rate %.1f%% is above %.1f%%: the generated statements mostly test denials'
                  % (100 * rate, 100 * self.args.max_denial_rate))
            ok = False
        if total < min(self.args.statements, 1):
            ok = False
        if ok:
            print('OK: every statement was denied, or gave the same result as the tenant\'s reference database')
        return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rowguard-host', default='127.0.0.1')
    p.add_argument('--rowguard-port', type=int, required=True)
    p.add_argument('--pg-port', type=int, required=True)
    p.add_argument('--pg-socket-dir', required=True)
    p.add_argument('--superuser', default='postgres')
    p.add_argument('--app-role', default='oracle_app')
    p.add_argument('--admin-user', default=None, help='a rowguard bypass user: RELOAD after creating the tables')
    p.add_argument('--admin-password', default=None)
    p.add_argument('--seed', type=int, default=20240501)
    p.add_argument('--statements', type=int, default=None)
    p.add_argument('--long', action='store_true', help='100000 statements')
    p.add_argument('--reset-every', type=int, default=300, help='reload the data every N statements')
    p.add_argument('--max-denial-rate', type=float, default=0.10)
    p.add_argument('--statement-timeout', type=int, default=5000, help='milliseconds, on both sides')
    p.add_argument('--max-mismatches', type=int, default=50)
    p.add_argument('--mismatch-file', default=None, help='append "tenant<TAB>statement" per mismatch')
    p.add_argument('--sql-file', default=None, help='run these statements (one per line) instead')
    p.add_argument('--tenant', type=int, default=1, choices=TENANTS)
    p.add_argument('--show-slowest', type=int, default=3, help='print the N slowest statements')
    p.add_argument('--no-known-bugs', action='store_true',
                   help='run the statements KNOWN_BUGS would skip too (to check a fix)')
    args = p.parse_args()
    if args.statements is None:
        args.statements = 100000 if args.long else 3000
    sys.stdout.reconfigure(line_buffering=True)
    try:
        oracle = Oracle(args)
        if args.sql_file:
            return oracle.run_file(args.sql_file)
        return oracle.run()
    except Fatal as e:
        print('FATAL: %s' % e)
        return 2


if __name__ == '__main__':
    sys.exit(main())
