"""API tokens moved from DRF's authtoken (kept in clear, never expiring) to django-rest-knox
(hashed, expiring). The old table held every token in clear: it goes, with its tokens, which
no longer authenticate anyway. Irreversible on purpose."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("knox", "0009_extend_authtoken_field")]

    operations = [
        migrations.RunSQL("DROP TABLE IF EXISTS authtoken_token", reverse_sql=migrations.RunSQL.noop),
    ]
