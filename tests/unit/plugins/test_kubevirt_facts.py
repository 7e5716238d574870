"""The day-2 facts kubevirt_vm_info gives per VM, from VM and VMI objects shaped as KubeVirt v1.9 writes them."""

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import facts

MIGRATED = {
    "startTimestamp": "2026-12-04T21:00:00Z", "endTimestamp": "2026-12-04T21:00:04Z",
    "sourceNode": "lab-node-1", "targetNode": "lab-node-2", "completed": True, "mode": "PreCopy",
    "migrationUid": "1234", "sourceState": {"node": "lab-node-1"}, "targetState": {"node": "lab-node-2"},
}


def vmi(conditions=(), **status):
    return {"metadata": {"name": "web", "namespace": "vms"}, "spec": {},
            "status": dict(status, phase="Running", conditions=list(conditions))}


def test_migration_summary_of_a_completed_migration():
    summary = facts.migration_facts(vmi(migrationState=MIGRATED))
    assert summary == {"source_node": "lab-node-1", "target_node": "lab-node-2", "start": "2026-12-04T21:00:00Z",
                       "end": "2026-12-04T21:00:04Z", "completed": True, "failed": False, "failure_reason": None,
                       "abort_requested": False, "abort_status": None, "mode": "PreCopy", "migration_uid": "1234"}


def test_migration_nodes_come_from_the_source_and_target_states_when_the_flat_fields_are_absent():
    state = {"sourceState": {"node": "a"}, "targetState": {"node": "b"}, "failed": True,
             "failureReason": "target pod is unschedulable", "abortRequested": True, "abortStatus": "Succeeded"}
    summary = facts.migration_facts(vmi(migrationState=state))
    assert (summary["source_node"], summary["target_node"]) == ("a", "b")
    assert summary["failed"] is True and summary["failure_reason"] == "target pod is unschedulable"
    assert summary["abort_requested"] is True and summary["abort_status"] == "Succeeded"
    assert summary["completed"] is False


def test_no_migration_without_a_migration_state_or_without_an_instance():
    assert facts.migration_facts(vmi()) is None
    assert facts.migration_facts(None) is None


def test_live_migratable_quotes_kubevirts_condition():
    message = ("cannot migrate VMI: PVC data is not shared, live migration requires that all PVCs must be shared "
               "(using ReadWriteMany access mode)")
    day2 = facts.day2_facts({}, vmi([{"type": "LiveMigratable", "status": "False", "reason": "DisksNotLiveMigratable",
                                      "message": message}]))
    assert day2["live_migratable"] == {"status": "False", "reason": "DisksNotLiveMigratable", "message": message}
    assert facts.day2_facts({}, vmi([{"type": "LiveMigratable", "status": "True"}]))["live_migratable"] == {
        "status": "True", "reason": None, "message": None}
    assert facts.day2_facts({}, None)["live_migratable"] is None


def test_restart_required_only_when_the_condition_is_true():
    vm = {"status": {"conditions": [{"type": "RestartRequired", "status": "True",
                                     "message": "a non-live-updatable field was changed in the template spec"}]}}
    assert facts.restart_required(vm) == {"required": True,
                                          "message": "a non-live-updatable field was changed in the template spec"}
    assert facts.restart_required({"status": {"conditions": [{"type": "RestartRequired", "status": "False",
                                                              "message": "old"}]}}) == {"required": False,
                                                                                        "message": None}
    assert facts.restart_required({}) == {"required": False, "message": None}


def test_volume_status_with_a_hotplugged_volume():
    status = [
        {"name": "rootdisk", "target": "vda", "phase": "Ready", "size": 1073741824,
         "persistentVolumeClaimInfo": {"claimName": "root", "accessModes": ["ReadWriteMany"]}},
        {"name": "data", "target": "sda", "phase": "Ready", "reason": "VolumeReady",
         "message": "Successfully attach hotplugged volume data to VM",
         "hotplugVolume": {"attachPodName": "hp-volume-x", "attachPodUID": "u"}},
    ]
    volumes = facts.volume_status(vmi(volumeStatus=status))
    assert volumes[0] == {"name": "rootdisk", "target": "vda", "phase": "Ready", "reason": None, "message": None,
                          "size": 1073741824, "hotplug": False, "attach_pod": None, "claim_name": "root",
                          "access_modes": ["ReadWriteMany"]}
    assert volumes[1]["hotplug"] is True and volumes[1]["attach_pod"] == "hp-volume-x"
    assert volumes[1]["reason"] == "VolumeReady" and volumes[1]["target"] == "sda"
    assert facts.volume_status(None) == []


def test_guest_agent_connected_with_its_guest_os_info():
    info = {"id": "fedora", "name": "Fedora Linux", "kernelRelease": "6.8.5"}
    connected = vmi([{"type": "AgentConnected", "status": "True", "lastTransitionTime": "2026-12-04T21:00:00Z"}],
                    guestOSInfo=info)
    assert facts.guest_agent(connected) == {"connected": True, "since": "2026-12-04T21:00:00Z", "unsupported": None,
                                            "guest_os_info": info}
    assert facts.agent_connected(connected) is True
    assert facts.guest_agent(vmi()) == {"connected": False, "since": None, "unsupported": None, "guest_os_info": {}}
    assert facts.agent_connected(None) is False


def test_an_unsupported_agent_version_is_reported():
    unsupported = vmi([{"type": "AgentConnected", "status": "True"},
                       {"type": "AgentVersionNotSupported", "status": "True", "reason": "Unsupported",
                        "message": "This guest agent is not supported"}])
    assert facts.guest_agent(unsupported)["unsupported"]["message"] == "This guest agent is not supported"


def test_every_day2_key_is_there_for_a_stopped_vm():
    day2 = facts.day2_facts({"spec": {"template": {"spec": {"evictionStrategy": "None"}}}}, None)
    assert day2 == {"migration": None, "live_migratable": None, "storage_live_migratable": None,
                    "restart_required": {"required": False, "message": None}, "volume_status": [],
                    "guest_agent": {"connected": False, "since": None, "unsupported": None, "guest_os_info": {}},
                    "eviction_strategy": "None"}
