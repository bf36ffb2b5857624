"""``ssh://`` URLs: the private key of the matching ``[auth]`` group comes from
the vault and is handed to hg's own ssh child through a private agent.

Only the ssh command that Mercurial runs for the peer sees the agent: its
socket goes into that command's environment (as an ``[sshenv]`` value for the
duration of the connection), never into hg's own environment, hooks or other
children.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mercurial import error, extensions, pycompat

from . import auth, sanitize

if TYPE_CHECKING:
    from .sshagent import Agent

# One agent per [auth] group, so that a host is only ever offered its own key.
_agents: dict[tuple[str, str], Agent] = {}


def _agent_socket(ui, group) -> bytes:
    from . import session, sshagent

    key = (group.name, group.ref)
    agent = _agents.get(key)
    if agent is not None and agent.process.poll() is None:
        return agent.socket.encode()
    describe = b"[auth] %s" % sanitize.local(group.name)
    secret = session.read(ui, group.ref, use="ssh", context=f"[auth] {group.name}", group=group)
    agent = sshagent.start(ui)
    sshagent.add_key(ui, agent, secret.value, describe, sanitize.local(group.ref))
    _agents[key] = agent
    ui.debug(b"keyvault: %s key loaded into ssh-agent pid %d\n" % (describe, agent.pid))
    return agent.socket.encode()


def _make_peer(orig, ui, path, create, *args, **kwargs):
    # Mercurial < 6.4 hands over the location as bytes, later versions as a path object.
    location = pycompat.strurl(getattr(path, "loc", path))
    group = auth.matching_group(ui, location, None)
    if group is None:
        return orig(ui, path, create, *args, **kwargs)
    socket = _agent_socket(ui, group)
    ui.debug(
        b"keyvault: using [auth] %s for %s\n"
        % (sanitize.local(group.name), sanitize.local(location))
    )
    # [sshenv] reaches only the ssh command of this peer, and only while it is made.
    with ui.configoverride({(b"sshenv", b"SSH_AUTH_SOCK"): socket}, b"keyvault"):
        return orig(ui, path, create, *args, **kwargs)


def install(sshpeer) -> None:
    """Wrap an executed ``mercurial.sshpeer``."""
    name = "make_peer" if hasattr(sshpeer, "make_peer") else "instance"
    if not hasattr(sshpeer, name):
        raise error.Abort(
            b"keyvault: this Mercurial's sshpeer has no peer factory to wrap",
            hint=b"this Mercurial version is not supported for ssh:// keys: please report it, "
            b"with the output of hg version",
        )
    extensions.wrapfunction(sshpeer, name, _make_peer)
