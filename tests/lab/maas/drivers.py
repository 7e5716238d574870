"""The power drivers the simulated rack controller reports, as MAAS describes them.

Each driver mirrors the `settings` of its class in MAAS's `src/provisioningserver/drivers/power/<name>.py`
(IPMIPowerDriver, RedfishPowerDriver, VirshPowerDriver, AMTPowerDriver, ManualPowerDriver); each field is
built like `make_setting_field` (`provisioningserver/drivers/__init__.py:113-173`) and each entry like
`add_power_driver_parameters` (`maasserver/clusterrpc/driver_parameters.py`), sorted by description as
`get_all_power_types` sorts them.
"""

from typing import Dict, List


def setting(name: str, label: str, field_type: str = "string", choices=None, default=None, required: bool = False,
            scope: str = "bmc", secret: bool = False) -> dict:
    """One field, with make_setting_field's defaults (an empty default, or [] for multiple_choice)."""
    if default is None:
        default = [] if field_type == "multiple_choice" else ""
    return {"name": name, "label": label, "required": required, "field_type": field_type,
            "choices": choices or [], "default": default, "scope": scope, "secret": secret}


def driver(name: str, description: str, fields: List[dict], chassis: bool = False, can_probe: bool = False,
           queryable: bool = True) -> dict:
    return {"driver_type": "power", "name": name, "description": description, "fields": fields,
            "chassis": chassis, "can_probe": can_probe, "missing_packages": [], "queryable": queryable}


IPMI_DRIVERS = [["LAN", "LAN [IPMI 1.5]"], ["LAN_2_0", "LAN_2_0 [IPMI 2.0]"]]
IPMI_BOOT_TYPES = [["auto", "Automatic"], ["legacy", "Legacy boot"], ["efi", "EFI boot"]]
IPMI_CIPHER_SUITES = [["17", "17 - HMAC-SHA256::HMAC_SHA256_128::AES-CBC-128"],
                      ["3", "3 - HMAC-SHA1::HMAC-SHA1-96::AES-CBC-128"], ["", "freeipmi-tools default"],
                      ["8", "8 - HMAC-MD5::HMAC-MD5-128::AES-CBC-128"],
                      ["12", "12 - HMAC-MD5::MD5-128::AES-CBC-128"]]
IPMI_PRIVILEGE_LEVELS = [["USER", "User"], ["OPERATOR", "Operator"], ["ADMIN", "Administrator"]]
IPMI_WORKAROUND_FLAGS = [["opensesspriv", "Opensesspriv"], ["authcap", "Authcap"], ["idzero", "Idzero"],
                         ["unexpectedauth", "Unexpectedauth"], ["forcepermsg", "Forcepermsg"],
                         ["endianseq", "Endianseq"], ["intel20", "Intel20"], ["supermicro20", "Supermicro20"],
                         ["sun20", "Sun20"], ["nochecksumcheck", "Nochecksumcheck"],
                         ["integritycheckvalue", "Integritycheckvalue"], ["ipmiping", "Ipmiping"], ["", "None"]]
IPMI_POWER_OFF_MODES = [["soft", "Soft power off"], ["hard", "Hard power off"]]

POWER_DRIVERS = sorted([
    # IPMIPowerDriver.settings (drivers/power/ipmi.py)
    driver("ipmi", "IPMI", [
        setting("power_driver", "Power driver", "choice", IPMI_DRIVERS, "LAN_2_0", required=True),
        setting("power_boot_type", "Power boot type", "choice", IPMI_BOOT_TYPES, "auto"),
        setting("power_address", "IP address", required=True),
        setting("power_user", "Power user"),
        setting("power_pass", "Power password", "password", secret=True),
        setting("k_g", "K_g BMC key", "password", secret=True),
        setting("cipher_suite_id", "Cipher Suite ID", "choice", IPMI_CIPHER_SUITES, "3"),
        setting("privilege_level", "Privilege Level", "choice", IPMI_PRIVILEGE_LEVELS, "OPERATOR"),
        setting("workaround_flags", "Workaround Flags", "multiple_choice", IPMI_WORKAROUND_FLAGS, ["opensesspriv"]),
        setting("mac_address", "Power MAC", scope="node"),
        setting("power_off_mode", "Power off mode", "choice", IPMI_POWER_OFF_MODES, "hard"),
    ]),
    # RedfishPowerDriver.settings (drivers/power/redfish.py)
    driver("redfish", "Redfish", [
        setting("power_address", "Redfish address", required=True),
        setting("power_user", "Redfish user", required=True),
        setting("power_pass", "Redfish password", "password", required=True, secret=True),
        setting("node_id", "Node ID", scope="node"),
    ]),
    # VirshPowerDriver.settings (drivers/power/virsh.py)
    driver("virsh", "Virsh (virtual systems)", [
        setting("power_address", "Address", required=True),
        setting("power_pass", "Password (optional)", "password", secret=True),
        setting("power_id", "Virsh VM ID", scope="node", required=True),
    ], chassis=True, can_probe=True),
    # AMTPowerDriver.settings (drivers/power/amt.py)
    driver("amt", "Intel AMT", [
        setting("power_user", "AMT user", default="admin"),
        setting("power_pass", "Power password", "password", secret=True),
        setting("port", "HTTP or HTTPS", "choice", [["16992", "HTTP"], ["16993", "HTTPS"]], "16992"),
        setting("power_address", "Power address", required=True),
    ]),
    # ManualPowerDriver (drivers/power/manual.py): no settings, cannot be queried or driven.
    driver("manual", "Manual", [], queryable=False),
], key=lambda entry: entry["description"])

DRIVERS: Dict[str, dict] = {entry["name"]: entry for entry in POWER_DRIVERS}


def missing_required(power_type: str, params: Dict[str, str]) -> List[str]:
    """Required fields neither given nor defaulted: make_form_field fills a required field from its default."""
    return [f["name"] for f in DRIVERS[power_type]["fields"]
            if f["required"] and not params.get(f["name"]) and not f["default"]]
