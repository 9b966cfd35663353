"""Bind every stored password to the URL, username and provider it has now.

Passwords stored before this migration are trusted as they are; from now on
a change of any of the three needs the password again.
"""

import hashlib
import json

from django.db import migrations

import migrator.fields


def _scope(env) -> str:
    # A copy of models.credential_scope as it was when this migration was written:
    # a later change there must not change what this migration did.
    document = {
        "password": hashlib.sha256(env.password.encode()).hexdigest(),
        "url": env.url.strip().rstrip("/"),
        "username": env.username,
        "provider": env.provider,
        **({} if env.verify_tls else {"verify_tls": False}),
    }
    return json.dumps(document, sort_keys=True)


def bind_existing(apps, schema_editor):
    Environment = apps.get_model("migrator", "Environment")
    for env in Environment.objects.all():
        env.password_scope = _scope(env)
        env.save(update_fields=["password_scope"])


class Migration(migrations.Migration):
    dependencies = [("migrator", "0002_url_validator")]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="password_scope",
            field=migrator.fields.EncryptedTextField(default="", editable=False),
        ),
        migrations.AlterField(
            model_name="environment",
            name="password",
            field=migrator.fields.EncryptedTextField(
                editable=False, help_text="Stored encrypted; never shown again."
            ),
        ),
        migrations.AlterModelOptions(
            name="environment",
            options={
                "ordering": ["name"],
                "permissions": [
                    ("manage_environments", "Can add, change and delete Superset environments")
                ],
            },
        ),
        migrations.RunPython(bind_existing, migrations.RunPython.noop),
    ]
