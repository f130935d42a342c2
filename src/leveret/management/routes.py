"""Every path of the API and who may call it (RabbitMQ's ``rabbit_mgmt_dispatcher`` and the
``is_authorized*`` of each of its handlers)."""

from __future__ import annotations

from . import (
    bindings,
    connections,
    definitions,
    exchanges,
    messages,
    overview,
    parameters,
    queues,
    users,
    vhosts,
)
from .app import ADMIN, ANY, GLOBAL_PARAMETERS, MONITOR, POLICY, VHOST, Handler, Route


def route(path: str, **methods: tuple[Handler, str] | Handler) -> Route:
    """A path and its handlers; a handler without a level has the path's default: VHOST
    for a path under a vhost's objects, ANY elsewhere."""
    default = VHOST if path.split("/", 1)[0] in _VHOST_SCOPED else ANY
    table: dict[str, tuple[Handler, str]] = {}
    for method, entry in methods.items():
        table[method] = entry if isinstance(entry, tuple) else (entry, default)
    return Route(tuple(path.split("/")), table)


# RabbitMQ's handlers for these check is_authorized_vhost (queues, exchanges, bindings, the
# publish and get calls, aliveness-test, policy lists)
_VHOST_SCOPED = ("queues", "exchanges", "bindings", "aliveness-test", "policies",
                 "operator-policies")


ROUTES: list[Route] = [
    route("overview", GET=overview.overview),
    route("cluster-name", GET=overview.cluster_name, PUT=(overview.put_cluster_name, ADMIN)),
    route("nodes", GET=(overview.nodes, MONITOR)),
    route("nodes/{node}", GET=(overview.node, MONITOR)),
    route("extensions", GET=overview.extensions),
    route("whoami", GET=overview.whoami),
    # queues
    route("queues", GET=queues.list_queues),
    route("queues/{vhost}", GET=queues.list_queues),
    route("queues/{vhost}/{name}", GET=queues.show_queue, PUT=queues.put_queue,
          DELETE=queues.delete_queue),
    route("queues/{vhost}/{name}/contents", DELETE=queues.purge_queue),
    route("queues/{vhost}/{name}/bindings", GET=queues.queue_bindings),
    route("queues/{vhost}/{name}/actions", POST=(queues.queue_actions, ADMIN)),
    # exchanges
    route("exchanges", GET=exchanges.list_exchanges),
    route("exchanges/{vhost}", GET=exchanges.list_exchanges),
    route("exchanges/{vhost}/{name}", GET=exchanges.show_exchange, PUT=exchanges.put_exchange,
          DELETE=exchanges.delete_exchange),
    route("exchanges/{vhost}/{name}/bindings/source", GET=exchanges.exchange_bindings_source),
    route("exchanges/{vhost}/{name}/bindings/destination",
          GET=exchanges.exchange_bindings_destination),
    # bindings
    route("bindings", GET=bindings.list_bindings),
    route("bindings/{vhost}", GET=bindings.list_bindings),
    route("bindings/{vhost}/e/{source}/{dtype}/{destination}", GET=bindings.list_between,
          POST=bindings.create_binding),
    route("bindings/{vhost}/e/{source}/{dtype}/{destination}/{props}",
          GET=bindings.show_binding, DELETE=bindings.delete_binding),
    # connections, channels, consumers
    route("connections", GET=connections.list_connections),
    route("connections/{name}", GET=connections.show_connection,
          DELETE=connections.delete_connection),
    route("connections/{name}/channels", GET=connections.connection_channels),
    route("vhosts/{vhost}/connections", GET=(connections.list_connections, VHOST)),
    route("vhosts/{vhost}/channels", GET=(connections.list_channels, VHOST)),
    route("channels", GET=connections.list_channels),
    route("channels/{name}", GET=connections.show_channel),
    route("consumers", GET=connections.list_consumers),
    route("consumers/{vhost}", GET=connections.list_consumers),
    # health
    route("health/checks/alarms", GET=overview.check_alarms),
    route("health/checks/local-alarms", GET=overview.check_local_alarms),
    route("health/checks/virtual-hosts", GET=overview.check_virtual_hosts),
    route("health/checks/port-listener/{port}", GET=overview.check_port_listener),
    route("health/checks/node-is-quorum-critical",
          GET=overview.check_node_is_quorum_critical),
    route("health/checks/node-is-mirror-sync-critical",
          GET=overview.check_node_is_mirror_sync_critical),
    route("health/checks/protocol-listener/{protocol}", GET=overview.check_protocol_listener),
    route("health/checks/certificate-expiration/{within}/{unit}",
          GET=overview.check_certificate_expiration),
    route("aliveness-test/{vhost}", GET=overview.aliveness_test),
]

# the rest, in the order the issue gives them
ROUTES += [
    route("definitions", GET=(definitions.get_all, ADMIN), POST=(definitions.post_all, ADMIN)),
    route("all-configuration", GET=(definitions.get_all, ADMIN),
          POST=(definitions.post_all, ADMIN)),
    route("definitions/{vhost}", GET=(definitions.get_vhost, ADMIN),
          POST=(definitions.post_vhost, ADMIN)),
    route("exchanges/{vhost}/{name}/publish", POST=messages.publish),
    route("queues/{vhost}/{name}/get", POST=messages.get_messages),
    route("vhosts", GET=vhosts.list_vhosts),
    route("vhosts/{vhost}", GET=(vhosts.show_vhost, ADMIN), PUT=(vhosts.put_vhost, ADMIN),
          DELETE=(vhosts.delete_vhost, ADMIN)),
    route("vhost-limits", GET=(vhosts.list_limits, ANY)),
    route("vhost-limits/{vhost}", GET=(vhosts.list_limits, ANY)),
    route("user-limits", GET=(users.list_limits, ANY)),
    route("user-limits/{user}", GET=(users.list_limits, ANY)),
    route("parameters", GET=(parameters.list_parameters, POLICY)),
    route("parameters/{component}", GET=(parameters.list_parameters, POLICY)),
    route("parameters/{component}/{vhost}", GET=(parameters.list_parameters, POLICY)),
    route("parameters/{component}/{vhost}/{name}", GET=(parameters.show_parameter, POLICY),
          PUT=(parameters.put_parameter, POLICY), DELETE=(parameters.delete_parameter, POLICY)),
    route("global-parameters", GET=(parameters.list_global, GLOBAL_PARAMETERS)),
    route("global-parameters/{name}", GET=(parameters.show_global, GLOBAL_PARAMETERS),
          PUT=(parameters.put_global, GLOBAL_PARAMETERS),
          DELETE=(parameters.delete_global, GLOBAL_PARAMETERS)),
    route("policies", GET=parameters.list_policies),
    route("policies/{vhost}", GET=parameters.list_policies),
    route("policies/{vhost}/{name}", GET=(parameters.show_policy, POLICY),
          PUT=(parameters.put_policy, POLICY), DELETE=(parameters.delete_policy, POLICY)),
    route("operator-policies", GET=parameters.list_operator_policies),
    route("operator-policies/{vhost}", GET=parameters.list_operator_policies),
    route("operator-policies/{vhost}/{name}", GET=(parameters.show_operator_policy, ADMIN),
          PUT=(parameters.put_operator_policy, ADMIN),
          DELETE=(parameters.delete_operator_policy, ADMIN)),
    route("users", GET=(users.list_users, ADMIN)),
    route("users/without-permissions", GET=(users.users_without_permissions, ADMIN)),
    route("users/bulk-delete", POST=(users.bulk_delete_users, ADMIN)),
    route("users/{user}", GET=(users.show_user, ADMIN), PUT=(users.put_user, ADMIN),
          DELETE=(users.delete_user, ADMIN)),
    route("users/{user}/permissions", GET=(users.list_permissions, ADMIN)),
    route("users/{user}/topic-permissions", GET=(users.list_topic_permissions, ADMIN)),
    route("permissions", GET=(users.list_permissions, ADMIN)),
    route("permissions/{vhost}/{user}", GET=(users.show_permission, ADMIN),
          PUT=(users.put_permission, ADMIN), DELETE=(users.delete_permission, ADMIN)),
    route("topic-permissions", GET=(users.list_topic_permissions, ADMIN)),
    route("topic-permissions/{vhost}/{user}", GET=(users.show_topic_permission, ADMIN),
          PUT=(users.put_topic_permission, ADMIN),
          DELETE=(users.delete_topic_permission, ADMIN)),
    route("vhosts/{vhost}/permissions", GET=(users.list_permissions, ADMIN)),
    route("vhosts/{vhost}/topic-permissions", GET=(users.list_topic_permissions, ADMIN)),
]
