"""Bind every stored password to the URL, username and provider it has now.

Passwords stored before this migration are trusted as they are; from now on
a change of any of the three needs the password again.
"""

from django.db import migrations

import migrator.fields


def bind_existing(apps, schema_editor):
    from migrator.models import credential_scope

    Environment = apps.get_model("migrator", "Environment")
    for env in Environment.objects.all():
        env.password_scope = credential_scope(env.password, env.url, env.username, env.provider)
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
