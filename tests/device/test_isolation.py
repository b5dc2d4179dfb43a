import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_kit_agent_imports_nothing_from_django_or_the_server_apps():
    code = (
        "import sys, device.agent, device.check, device.__main__\n"
        "server = [m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'kits', 'telemetry',"
        " 'astroplant_site', 'boto3', 'pynamodb')]\n"
        "print(','.join(server))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == ""
