"""Typed secrets: credentials whose format names their issuer (a prefix, a fixed length, a header).

These are the most certain rules, so they run first and name the kind precisely. Shapes follow the
issuers' documentation and gitleaks' rule set (config/gitleaks.toml, MIT licence); a comment names the
gitleaks rule id where a rule comes from there.
"""

from __future__ import annotations

from blocklearn.learn.redaction.engine import Rule, rule
from blocklearn.learn.redaction.values import literal

# The end of a token, as gitleaks writes it: a quote, a space, a semicolon or the end.
_END = r"(?=[`'\"\s;,)]|\\[nr]|$)"

TYPED: list[Rule] = [
    rule(
        "private-key",
        # To the END line, or to the end of the text when it is cut off (a partial key is still secret);
        # one greedy pass, so a cell of repeated BEGIN lines stays linear.
        r"(?P<secret>-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[^-]|-(?!----END ))*"
        r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?)",
        needles=["private key"],
    ),
    # gitleaks: aws-access-token (the key id; its prefixes name the kind of credential).
    rule("aws-access-key", r"\b(?P<secret>(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[0-9A-Z]{16})\b"),
    rule(
        "aws-secret-key",
        r"(?i)(?:aws_secret_access_key|aws_secret_key|secretaccesskey)[\"']?\s*(?:[=:]|\s)\s*[\"']?(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        needles=["aws_secret", "secretaccesskey"],
    ),
    rule(
        "gcp-private-key-id",
        r"\"private_key_id\"\s*:\s*\"(?P<secret>[0-9a-f]{40})\"",
        needles=["private_key_id"],
    ),
    rule("google-api-key", r"\b(?P<secret>AIza[0-9A-Za-z_-]{35})", needles=["aiza"]),  # gitleaks: gcp-api-key
    rule(
        "azure-storage-key",
        r"(?:AccountKey|SharedAccessKey)=(?P<secret>[A-Za-z0-9+/=]{20,})",
        needles=["accountkey", "sharedaccesskey"],
    ),
    rule("azure-sas-signature", r"[?&]sig=(?P<secret>[A-Za-z0-9%+/=]{20,})", needles=["sig="]),
    # gitleaks: azure-ad-client-secret (three characters, a digit, "Q~", then 31 to 34).
    rule(
        "azure-client-secret",
        r"(?<![\w~.-])(?P<secret>[a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34})",
        needles=["q~"],
    ),
    # gitleaks: github-pat, github-oauth, github-app-token, github-refresh-token, github-fine-grained-pat.
    rule(
        "github-token",
        r"\b(?P<secret>gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        needles=["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
    ),
    # gitleaks: gitlab-pat, gitlab-deploy-token, gitlab-runner-authentication-token, gitlab-ptt, ...
    rule(
        "gitlab-token",
        r"\b(?P<secret>(?:glpat|gldt|glrt|glptt|glcbt|glft|glimt|glagent|glsoat|gloas)-[A-Za-z0-9_-]{20,})",
        needles=[
            "glpat-",
            "gldt-",
            "glrt-",
            "glptt-",
            "glcbt-",
            "glft-",
            "glimt-",
            "glagent-",
            "glsoat-",
            "gloas-",
        ],
    ),
    rule("slack-token", r"\b(?P<secret>xox[abposre]-[A-Za-z0-9-]{10,})", needles=["xox"]),
    rule(
        "slack-webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9/_+-]+)",
        needles=["hooks.slack.com"],
    ),
    # gitleaks: microsoft-teams-webhook (the path after webhookb2/ is the credential).
    rule(
        "teams-webhook",
        r"\.webhook\.office\.com/webhookb2/(?P<secret>[A-Za-z0-9@/_-]{40,})",
        needles=["webhook.office.com"],
    ),
    rule(
        "discord-webhook",
        r"discord(?:app)?\.com/api/webhooks/(?P<secret>\d+/[\w-]{20,})",
        needles=["discord"],
    ),
    rule(
        "stripe-key",
        r"\b(?P<secret>(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,})",
        needles=["_live_", "_test_"],
    ),
    rule("anthropic-key", r"\b(?P<secret>sk-ant-[A-Za-z0-9_-]{20,})", needles=["sk-ant-"]),
    rule("openai-key", r"\b(?P<secret>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})", needles=["sk-"]),
    rule("npm-token", r"\b(?P<secret>npm_[A-Za-z0-9]{36})", needles=["npm_"]),
    rule("pypi-token", r"\b(?P<secret>pypi-AgEIcHlwaS5vcmc[\w-]{50,})", needles=["pypi-ageichlwas5vcmc"]),
    rule("huggingface-token", r"\b(?P<secret>hf_[A-Za-z]{34,})" + _END, needles=["hf_"]),
    rule("sendgrid-key", r"\b(?P<secret>SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})", needles=["sg."]),
    rule("twilio-key", r"\b(?P<secret>SK[0-9a-fA-F]{32})\b", needles=["sk"]),
    rule("vault-token", r"\b(?P<secret>hv[sbr]\.[A-Za-z0-9_-]{24,})", needles=["hvs.", "hvb.", "hvr."]),
    rule(
        "digitalocean-token", r"\b(?P<secret>do[opr]_v1_[a-f0-9]{64})", needles=["_v1_"]
    ),  # gitleaks: digitalocean-*
    rule("shopify-token", r"\b(?P<secret>shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})", needles=["shp"]),
    rule("databricks-token", r"\b(?P<secret>dapi[a-f0-9]{32}(?:-\d)?)" + _END, needles=["dapi"]),
    rule(
        "doppler-token", r"\b(?P<secret>dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44})", needles=["dp."]
    ),
    rule(
        "terraform-token",
        r"\b(?P<secret>[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})",
        needles=["atlasv1"],
    ),
    rule("linear-key", r"\b(?P<secret>lin_api_[A-Za-z0-9]{40})", needles=["lin_api_"]),
    rule("pulumi-token", r"\b(?P<secret>pul-[a-f0-9]{40})", needles=["pul-"]),
    rule("rubygems-token", r"\b(?P<secret>rubygems_[a-f0-9]{48})", needles=["rubygems_"]),
    rule("sentry-token", r"\b(?P<secret>sntry[us]_[A-Za-z0-9_=+/-]{40,})", needles=["sntry"]),
    rule(
        "grafana-token",
        r"\b(?P<secret>glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,3})",
        needles=["glsa_", "glc_"],
    ),
    rule(
        "age-secret-key",
        r"(?P<secret>AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})",
        needles=["age-secret"],
    ),
    rule("openshift-token", r"\b(?P<secret>sha256~[\w-]{43})(?![\w-])", needles=["sha256~"]),
    rule("perplexity-key", r"\b(?P<secret>pplx-[A-Za-z0-9]{48})", needles=["pplx-"]),
    rule(
        "notion-token",
        r"\b(?P<secret>(?:ntn_[0-9]{11}[A-Za-z0-9]{35}|secret_[A-Za-z0-9]{43}))",
        needles=["ntn_", "secret_"],
    ),
    rule("postman-key", r"\b(?P<secret>PMAK-[a-f0-9]{24}-[a-f0-9]{34})", needles=["pmak-"]),
    rule("square-token", r"\b(?P<secret>(?:EAAA|sq0atp-|sq0csp-)[\w-]{22,60})", needles=["eaaa", "sq0"]),
    rule("dynatrace-token", r"\b(?P<secret>dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64})", needles=["dt0c01."]),
    rule("heroku-key", r"\b(?P<secret>HRKU-[A-Za-z0-9_-]{30,})", needles=["hrku-"]),
    rule("planetscale-token", r"(?P<secret>pscale_(?:pw|tkn|oauth)_[\w=.-]{32,64})", needles=["pscale_"]),
    rule("onepassword-token", r"\b(?P<secret>ops_eyJ[A-Za-z0-9+/]{100,}={0,3})", needles=["ops_eyj"]),
    # gitleaks: telegram-bot-api-token (bot id, a colon, "AA" and 33 more).
    rule(
        "telegram-bot-token",
        r"(?:\b|(?<=bot))(?P<secret>\d{6,12}:A[A-Za-z0-9_-]{34})(?![\w-])",
        needles=[":a"],
    ),
    rule("mailgun-key", r"\b(?P<secret>key-[a-f0-9]{32})\b", needles=["key-"]),
    rule("mailchimp-key", r"\b(?P<secret>[a-f0-9]{32}-us\d{1,2})\b", needles=["-us"]),
    rule(
        "new-relic-key",
        r"\b(?P<secret>NR(?:AK|II|JS|RA)-[A-Za-z0-9]{20,42})",
        needles=["nrak-", "nrii-", "nrjs-", "nrra-"],
    ),
    rule(
        "jwt",
        r"\b(?P<secret>eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})",
        needles=["eyj"],
    ),
    # gitleaks: curl-auth-header. Any Authorization scheme, and the usual API-key headers.
    rule(
        "bearer-token",
        r"(?i)authorization:\s*(?:bearer|token|apikey|api-key)\s+(?P<secret>[^\s'\"]+)",
        check=literal,
        needles=["authorization"],
    ),
    rule(
        "basic-auth",
        r"(?i)authorization:\s*basic\s+(?P<secret>[A-Za-z0-9+/=]+)",
        check=literal,
        needles=["authorization"],
    ),
    rule(
        "api-key-header",
        r"(?i)\b(?:x-[a-z-]*)?(?:api-?key|api-?token|auth-?token|access-?token|private-token|x-vault-token|"
        r"x-auth-key|x-goog-api-key|ocp-apim-subscription-key)\s*:\s*(?P<secret>(?![$<{])[^\s'\"]{6,})",
        check=literal,
        needles=["key", "token"],
    ),
    # A password in the user-information part of a URL (psql, mongodb, redis, amqp, git, pip index URLs).
    rule(
        "url-password",
        r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"\[]*:(?P<secret>(?![$<{])[^\s@/'\"\[\]]+)@",
        check=literal,
        needles=["://"],
    ),
    rule(
        "kubeconfig-token",
        r"(?m)^\s*(?:-\s+)?token:\s*(?P<secret>(?![$<{])\S+)",
        check=literal,
        needles=["token:"],
    ),
    rule(
        "kubeconfig-key",
        r"(?m)^\s*(?:client-key-data|client-key|id-token|refresh-token):\s*(?P<secret>(?![$<{/])\S+)",
        check=literal,
        needles=["client-key", "id-token", "refresh-token"],
    ),
    rule(
        "k8s-secret-literal",
        r"--from-literal=[^=\s]+=(?P<secret>\"[^\"]*\"|'[^']*'|[^\s\"']+)",
        check=literal,
        needles=["--from-literal"],
    ),
]
