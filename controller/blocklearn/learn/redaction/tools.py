"""Passwords given positionally or after a short flag to common command-line tools.

A short flag such as `-p` means a password to one tool and a port to the next, so each rule names its
tool. The list comes from the tools' manual pages and from the command-line rules of the well-kept
detectors: gitleaks' curl-auth-user and curl-auth-header, detect-secrets' keyword plugin (which covers
`password=` but no positional form), and the shapes a held-out corpus found leaking (issue 14).
"""

from __future__ import annotations

import re
from dataclasses import replace

from blocklearn.learn.redaction.engine import Rule, rule
from blocklearn.learn.redaction.values import literal

# A tool in command position: at the start, or after a separator or a quote, maybe behind `sudo`,
# `xargs`, `find -exec`, `watch` ... (`find / -name mysql -print` names mysql, it does not run it).
_COMMAND = (
    r"(?:^|(?<=[\n;|&(`'\"“]))[ \t]*(?:(?:sudo|xargs|-?exec|watch|time|nohup|env|command|timeout)\s+"
    r"(?:-\S{1,64}\s+|\w{1,64}=\S{1,256}\s+|\d{1,9}\s+){0,8}){0,4}"
)
# The rest of a command line before the flag (no newline, no command separator in between), bounded
# so that a cell of repeated tool names stays linear (`htpasswd -b ` x 5,000 took 5 s unbounded).
_ARGS = r"[^\n;|&]{0,256}?\s"
# A value: quoted (spaces allowed) or one word; never a shell expansion or a template placeholder.
_WORD = r"(?P<secret>\"(?![$<{])[^\"\n]{1,256}\"|'(?![$<{])[^'\n]{1,256}'|(?![$<{\"'-])[^\s;|&\"'`)]{1,256})"


def _not_a_switch(match: re.Match[str]) -> bool:
    """`net user bob /add` and `net user bob *` (prompt) name no password."""
    return literal(match) and not match.group("secret").startswith("/")


def _tool(kind: str, command: str, flag: str, needles: list[str]) -> Rule:
    """`command ... flag VALUE`: the value after a flag of one tool, where the tool is the command."""
    return rule(kind, rf"{_COMMAND}{command}\b{_ARGS}{flag}{_WORD}", literal, needles=needles)


_RULES: list[Rule] = [
    _tool("sshpass-password", r"sshpass", r"-p\s*", ["sshpass"]),
    # htpasswd -b[c|n|m|B...] [file] user password: the last of the two or three positional arguments.
    rule(
        "htpasswd-password",
        r"\bhtpasswd\b(?=[^\n;|&]{0,256}\s-[a-zA-Z]*b)[^\n;|&<>]{0,256}\s" + _WORD + r"(?=\s*(?:$|[;|&\n>]))",
        needles=["htpasswd"],
    ),
    # mysql -pSECRET (no space: with a space, -p prompts and the next word is the database).
    rule(
        "mysql-password",
        _COMMAND
        + r"(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mysqlcheck|mariadb|mariadb-dump)\b"
        + _ARGS
        + r"-p(?P<secret>(?![$<{-])[^\s;|&\"'`]+|\"[^\"\n]+\"|'[^'\n]+')",
        needles=["mysql", "mariadb"],
    ),
    _tool("redis-password", r"redis-cli", r"(?:-a|--pass)\s+", ["redis-cli"]),
    # openssl -passout/-passin/-pass/-password pass:SECRET (env: and file: name where it is, not what).
    rule("openssl-password", r"\s-pass(?:out|in|word)?\s+pass:(?P<secret>[^\s;|&\"'`]+)", needles=["pass:"]),
    _tool("openssl-password", r"openssl\s+enc", r"-k\s+", ["openssl"]),
    # smbclient/rpcclient/smbmap -U user%password (Samba's user%password form).
    rule(
        "smb-password",
        r"\b(?:smbclient|rpcclient|smbmap|smbcacls|net|crackmapexec|nxc|winexe|mount\.cifs)\b"
        + _ARGS
        + r"(?:-U|--user(?:name)?=?)\s*['\"]?[^\s%'\"]+%(?P<secret>[^\s'\";|&]+)",
        needles=["%"],
    ),
    # curl -u user:password, --user user:password; gitleaks: curl-auth-user.
    rule(
        "basic-auth",
        _COMMAND
        + r"(?:curl|http|wget|xh)\b"
        + _ARGS
        + r"(?:-u|--user|-a|--auth)(?:=|\s+)[\"']?[^\s:\"']+:(?P<secret>(?![$<{])[^\s\"']+)",
        needles=["-u", "--user", "-a"],
    ),
    _tool("curl-bearer", r"curl", r"--oauth2-bearer(?:=|\s+)", ["--oauth2-bearer"]),
    _tool(
        "docker-password",
        r"(?:docker|podman|buildah|skopeo|nerdctl|helm\s+registry)\s+login",
        r"-p\s+",
        ["login"],
    ),
    _tool("azure-password", r"az\s+(?:login|sql|mysql|postgres|vm\s+create|ad\s+sp)", r"-p\s+", ["az"]),
    # oc/cf/ibmcloud login -p SECRET; cqlsh/rabbitmqadmin -p SECRET; vsql -w SECRET.
    _tool("cli-password", r"(?:oc|cf|ibmcloud)\s+login", r"-p\s+", ["login"]),
    _tool("cli-password", r"(?:cqlsh|rabbitmqadmin)", r"-p\s+", ["cqlsh", "rabbitmqadmin"]),
    _tool("cli-password", r"vsql", r"-w\s+", ["vsql"]),
    # openssl passwd [-1|-6|-salt x] PASSWORD: the password is the last argument.
    rule(
        "openssl-password",
        r"\bopenssl\s+passwd\s+(?:-(?:salt\s+\S+|\S+)\s+)*" + _WORD,
        needles=["openssl"],
    ),
    # Password managers' CLIs: bw unlock MASTER, bw login EMAIL MASTER.
    rule("cli-password", r"\bbw\s+(?:unlock|login\s+\S+)\s+(?!-)" + _WORD, needles=["bw"]),
    # ldapsearch/ldapadd/ldapmodify/ldapdelete/ldappasswd -w secret (bind password).
    _tool("ldap-password", r"ldap[a-z]+", r"-w\s+", ["ldap"]),
    # sqlcmd/bcp/osql/isql -P secret (SQL Server), mongo/mongosh -p secret, ipmitool -P secret.
    _tool("sqlserver-password", r"(?:sqlcmd|bcp|osql|isql|mssql-cli|sqlpackage)", r"-P\s*", ["sql", "bcp"]),
    _tool(
        "mongo-password",
        r"(?:mongo|mongosh|mongodump|mongorestore|mongoexport|mongoimport)",
        r"-p\s+",
        ["mongo"],
    ),
    _tool("ipmi-password", r"ipmitool", r"-P\s+", ["ipmitool"]),
    _tool("mosquitto-password", r"mosquitto_(?:pub|sub|rr)", r"-P\s+", ["mosquitto"]),
    _tool("rdp-password", r"(?:rdesktop|xfreerdp|wlfreerdp)", r"(?:-p\s+|/p:)", ["rdesktop", "freerdp"]),
    _tool("vnc-password", r"(?:x11vnc|vncviewer)", r"-passwd\s+", ["vnc"]),
    # 7z/zip/unzip/unrar/rar/zipcloak: -pSECRET or -P SECRET.
    rule(
        "archive-password",
        _COMMAND + r"(?:7z|7za|7zr|rar|unrar)\b" + _ARGS + r"-p(?P<secret>(?![$<{-])[^\s;|&\"'`]+)",
        needles=["7z", "rar"],
    ),
    _tool("archive-password", r"(?:zip|unzip|zipcloak|fcrackzip)", r"-P\s+", ["zip"]),
    _tool(
        "java-keystore-password",
        r"(?:keytool|jarsigner|apksigner)",
        r"-(?:storepass|keypass|srcstorepass|deststorepass)\s+",
        ["keytool", "jarsigner", "apksigner"],
    ),
    _tool("gpg-passphrase", r"gpg2?", r"--passphrase(?:=|\s+)", ["gpg"]),
    _tool("ssh-keygen-passphrase", r"ssh-keygen", r"-[NP]\s+", ["ssh-keygen"]),
    # rabbitmqctl add_user NAME PASSWORD / change_password NAME PASSWORD.
    rule(
        "rabbitmq-password",
        r"\brabbitmqctl\s+(?:add_user|change_password)\s+\S+\s+" + _WORD,
        needles=["rabbitmqctl"],
    ),
    # nmcli ... wifi connect SSID password SECRET; wpa_passphrase SSID SECRET.
    _tool(
        "wifi-password", r"nmcli", r"(?:password|wifi-sec\.psk|802-11-wireless-security\.psk)\s+", ["nmcli"]
    ),
    rule("wifi-password", r"\bwpa_passphrase\s+\S+\s+" + _WORD, needles=["wpa_passphrase"]),
    # Windows: net user NAME SECRET, net use \\server\share SECRET /user:NAME.
    rule("windows-password", r"(?i)\bnet\s+user\s+[^\s/]+\s+" + _WORD, _not_a_switch, needles=["net"]),
    rule(r"windows-password", r"(?i)\bnet\s+use\s+\S+\s+" + _WORD + r"(?=\s+/user:)", needles=["/user:"]),
    # sqlplus user/password@db, lftp -u user,password.
    rule(
        "sqlplus-password",
        r"\bsqlplus\s+(?:-\w+\s+)*[\w$#]+/(?P<secret>[^\s@/]+)(?=@|\s|$)",
        needles=["sqlplus"],
    ),
    rule(
        "ftp-password",
        r"\b(?:lftp|ncftp\w*)\b" + _ARGS + r"-u\s+[^\s,]+,(?P<secret>[^\s;|&]+)",
        needles=["ftp"],
    ),
    _tool("ftp-password", r"(?:ncftp\w*|wput)", r"-p\s+", ["ftp", "wput"]),
    # aws configure set aws_secret_access_key SECRET; mc alias set NAME URL ACCESS SECRET.
    rule(
        "aws-secret-key",
        r"\baws\s+configure\s+set\s+(?:\S+\.)?aws_secret_access_key\s+" + _WORD,
        needles=["aws_secret_access_key"],
    ),
    rule(
        "minio-secret",
        r"\bmc\s+(?:alias\s+set|config\s+host\s+add)\s+\S+\s+\S+\s+\S+\s+" + _WORD,
        needles=["mc"],
    ),
    _tool("cli-token", r"doctl\s+auth\s+init", r"(?:-t|--access-token)(?:=|\s+)", ["doctl"]),
    rule("vault-token", r"\bvault\s+login\s+(?!-)" + _WORD, needles=["vault"]),
    _tool("cli-token", r"(?:twine|poetry\s+publish|flit\s+publish)", r"-p\s+", ["twine", "publish"]),
    # gh secret set NAME --body VALUE / -b VALUE.
    _tool("gh-secret-value", r"gh\s+secret\s+set", r"(?:-b|--body)(?:=|\s+)", ["gh"]),
    # A password piped into a command that reads it from stdin: echo SECRET | sudo -S / --password-stdin.
    rule(
        "stdin-password",
        r"\b(?:echo|printf)\s+(?:-[ne]+\s+)?"
        + _WORD
        + r"\s*\|\s*(?:sudo\s+-\S{0,8}S|[^\n;|&]{0,256}--password-stdin|"
        r"passwd\s+--stdin|chpasswd|[^\n;|&]{0,256}\bkinit\b)",
        needles=["sudo", "--password-stdin", "passwd", "kinit"],
    ),
    rule(
        "stdin-password",
        r"\b(?:sudo\s+-\S{0,8}S|[^\n;|&]{0,256}(?:--password-stdin|signin|unlock|login|passwd))[^\n;|&]{0,256}<<<\s*\$?"
        + _WORD,
        needles=["<<<"],
    ),
    # user:password encoded for a Basic Authorization header (echo -n 'admin:S3cret' | base64).
    rule(
        "basic-auth",
        r"\b(?:echo|printf)\s+(?:-n\s+)?[\"']?[\w.@-]+:(?P<secret>[^\s\"':|]+)[\"']?\s*\|\s*base64\b(?!\s+-d)",
        needles=["base64"],
    ),
    # A literal written to a file named for a secret (echo 'S3cret' > ~/.vault_pass).
    rule(
        "file-secret",
        r"\b(?:echo|printf)\s+(?:-n\s+)?"
        + _WORD
        + r"\s*>>?\s*\S{0,128}(?:auth|token|secret|pass|pw|key|cred)[^\s/]{0,64}(?=\s|$|;|&)",
        needles=[">"],
    ),
    # SQL: CREATE/ALTER USER ... IDENTIFIED BY 'S3cret'; Ansible: '{{ 'S3cret' | password_hash(...) }}'.
    # SQL quotes the password always; unquoted, "identified by" is prose ("a pod identified by name").
    rule(
        "sql-password",
        r"(?i)\bidentified\s+(?:with\s+\S+\s+)?by\s+(?P<secret>'[^'\n]+'|\"[^\"\n]+\")",
        needles=["identified"],
    ),
    rule(
        "ansible-password",
        r"(?P<secret>'[^'\n]+'|\"[^\"\n]+\")\s*\|\s*password_hash\b",
        needles=["password_hash"],
    ),
    # chpasswd input: user:password (echo 'bob:S3cret' | chpasswd).
    rule(
        "chpasswd-password",
        r"\b(?:echo|printf)\s+[\"']?[\w.-]+:(?P<secret>[^\s\"':|]+)[\"']?\s*\|\s*(?:sudo\s+)?chpasswd",
        needles=["chpasswd"],
    ),
]
# Every value must be a literal, not `$PW`, `"$(cat pw)"`, `<password>` or `XXXX`.
TOOLS: list[Rule] = [r if r.check else replace(r, check=literal) for r in _RULES]
