"""What a kit may do on the MQTT broker: one least-privilege AWS IoT policy for every kit, and the
same rules as a mosquitto ACL for the local broker.

The policy is shared by all kits and still confines each to itself through policy variables:
`${iot:Connection.Thing.ThingName}` is the thing the connecting certificate is attached to, when
the client id equals that thing's name. So a kit may connect only as its own thing and use only
`astroplant/kits/<its thing name>/...`. The seed's `iot:*` on `*` would let any kit read and
impersonate every other: never ship it.
"""

# Names and channels come from the MQTT contract the kit itself uses.
from device.payloads import KIT_PUBLISHES, KIT_SUBSCRIBES, THING_NAME_PREFIX, TOPIC_ROOT

THING_NAME_VARIABLE = "${iot:Connection.Thing.ThingName}"

__all__ = ["KIT_PUBLISHES", "KIT_SUBSCRIBES", "THING_NAME_PREFIX", "TOPIC_ROOT"]


def thing_name_for(kit_id: str) -> str:
    return f"{THING_NAME_PREFIX}{kit_id}"


def kit_topic(thing_name: str, channel: str) -> str:
    return f"{TOPIC_ROOT}/{thing_name}/{channel}"


def kit_topics(thing_name: str) -> dict[str, str]:
    """Every topic of one kit, by channel: what goes into its config file."""
    return {channel: kit_topic(thing_name, channel) for channel in (*KIT_PUBLISHES, *KIT_SUBSCRIBES)}


def kit_policy_document(*, region: str, account_id: str) -> dict:
    """The AWS IoT policy attached to every kit's certificate."""
    arn = f"arn:aws:iot:{region}:{account_id}"
    me = THING_NAME_VARIABLE
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # Connect only with the client id of the thing this certificate is attached to.
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": f"{arn}:client/{me}",
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": [f"{arn}:topic/{kit_topic(me, channel)}" for channel in KIT_PUBLISHES],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [f"{arn}:topicfilter/{kit_topic(me, channel)}" for channel in KIT_SUBSCRIBES],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Receive",
                "Resource": [f"{arn}:topic/{kit_topic(me, channel)}" for channel in KIT_SUBSCRIBES],
            },
        ],
    }


def kit_mosquitto_acl() -> str:
    """The policy above as mosquitto pattern ACLs. `%u` is the username, which is the certificate's
    common name (the thing name) under `use_identity_as_username`; the broker also forces the
    client id to it (`use_username_as_clientid`), as the policy's iot:Connect does."""
    lines = ["# Every kit: its own topics only (the AWS IoT policy's rules, see kits/iot_policy.py)."]
    lines += [f"pattern write {kit_topic('%u', channel)}" for channel in KIT_PUBLISHES]
    lines += [f"pattern read {kit_topic('%u', channel)}" for channel in KIT_SUBSCRIBES]
    return "\n".join(lines) + "\n"


def account_of_arn(arn: str) -> str:
    """The account id in an ARN such as arn:aws:iot:eu-central-1:123456789012:cert/abc."""
    return arn.split(":")[4]
