# The example's rules for shared infrastructure (docs/policies.md), judged on every plan
# and every deploy by the policies of the deploy branch. Each decision kind is shown.
package capstan

# A database is the data team's: changing one outside a preview needs @acme/dba.
require_approval contains {
	"msg": sprintf("%s is a database; the data team reviews its changes", [id]),
	"team": "@acme/dba",
	"instance": id,
} if {
	some change in input.plan.changes
	id := change.instance
	database(id)
	not preview(id)
}

# A database replaced is a database lost: migrate it instead (its provisioner plan says
# when a change would replace it).
deny contains {
	"msg": sprintf("%s would replace %s, losing its data; change it in place or migrate", [entry.instance, resource.address]),
	"instance": entry.instance,
} if {
	some entry in input.resources
	database(entry.instance)
	not preview(entry.instance)
	some resource in entry.changes
	resource.action == "replace"
}

# A database's engine never goes back a major version: its data files would not open.
deny contains {
	"msg": sprintf("%s would go from engine %s back to %s; restore a dump into a new database instead", [change.instance, diff.old, diff.new]),
	"instance": change.instance,
} if {
	some change in input.plan.changes
	database(change.instance)
	some diff in change.diffs
	diff.kind == "param"
	diff.path == ["engine_version"]
	to_number(diff.new) < to_number(diff.old)
}

# Previews stay at the smallest size.
deny contains {
	"msg": sprintf("%s is a preview database of class %s; previews use db.t4g.micro", [id, class]),
	"instance": id,
} if {
	some id, instance in input.repository.instances
	database(id)
	preview(id)
	class := instance.params.instance_class
	class != "db.t4g.micro"
}

# Destroying production is allowed, and said loudly.
warn contains {
	"msg": sprintf("%s is destroyed in production", [change.instance]),
	"instance": change.instance,
} if {
	some change in input.plan.changes
	change.action == "destroy"
	input.repository.instances[change.instance].environment_attributes.tier == "production"
}

database(id) if input.repository.instances[id].bundle == "aws-aurora-postgresql"

database(id) if {
	some entry in input.resources
	entry.instance == id
	some resource in entry.changes
	startswith(resource.address, "aws_rds_")
}

preview(id) if input.repository.instances[id].environment_attributes.tier == "preview"
