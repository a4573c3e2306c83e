# Tests of databases.rego: `capstan policy test` runs every test_* rule.
package capstan_test

import data.capstan

db := {"bundle": "aws-aurora-postgresql", "environment_attributes": {"tier": "staging"}, "params": {"instance_class": "db.t4g.small"}}

preview_db := {"bundle": "aws-aurora-postgresql", "environment_attributes": {"tier": "preview"}, "params": {"instance_class": "db.r6g.large"}}

test_a_database_change_needs_the_data_team if {
	decisions := capstan.require_approval with input as {
		"plan": {"changes": [{"instance": "ecomm-staging-db", "action": "update"}]},
		"resources": [],
		"repository": {"instances": {"ecomm-staging-db": db}},
	}
	some d in decisions
	d.team == "@acme/dba"
	d.instance == "ecomm-staging-db"
}

test_a_database_replacement_is_denied if {
	count(capstan.deny) == 1 with input as {
		"plan": {"changes": [{"instance": "ecomm-staging-db", "action": "update"}]},
		"resources": [{"instance": "ecomm-staging-db", "changes": [{"address": "aws_rds_cluster.main", "action": "replace"}]}],
		"repository": {"instances": {"ecomm-staging-db": db}},
	}
}

test_an_update_in_place_is_not_denied if {
	count(capstan.deny) == 0 with input as {
		"plan": {"changes": [{"instance": "ecomm-staging-db", "action": "update"}]},
		"resources": [{"instance": "ecomm-staging-db", "changes": [{"address": "aws_rds_cluster.main", "action": "update"}]}],
		"repository": {"instances": {"ecomm-staging-db": db}},
	}
}

test_a_large_preview_database_is_denied if {
	some d in capstan.deny with input as {
		"plan": {"changes": [{"instance": "ecomm-pr7-db", "action": "create"}]},
		"resources": [],
		"repository": {"instances": {"ecomm-pr7-db": preview_db}},
	}
	d.instance == "ecomm-pr7-db"
}

test_destroying_production_warns if {
	count(capstan.warn) == 1 with input as {
		"plan": {"changes": [{"instance": "si-produs-vpc", "action": "destroy"}]},
		"resources": [],
		"repository": {"instances": {"si-produs-vpc": {"bundle": "aws-vpc", "environment_attributes": {"tier": "production"}}}},
	}
}

test_an_engine_downgrade_is_denied if {
	some d in capstan.deny with input as {
		"plan": {"changes": [{"instance": "ecomm-staging-db", "action": "update", "diffs": [{"kind": "param", "path": ["engine_version"], "old": "16", "new": "15"}]}]},
		"resources": [],
		"repository": {"instances": {"ecomm-staging-db": db}},
	}
	startswith(d.msg, "ecomm-staging-db would go from engine 16 back to 15")
}

test_an_engine_upgrade_is_allowed if {
	count(capstan.deny) == 0 with input as {
		"plan": {"changes": [{"instance": "ecomm-staging-db", "action": "update", "diffs": [{"kind": "param", "path": ["engine_version"], "old": "15", "new": "16"}]}]},
		"resources": [],
		"repository": {"instances": {"ecomm-staging-db": db}},
	}
}
