import boto3


def test_moto_server_answers_boto3(moto_server):
    client = boto3.client("dynamodb")
    assert client.meta.endpoint_url == moto_server.url
    assert client.list_tables()["TableNames"] == []
