from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker


def test_database_answers(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s:
        assert s.execute(text("select 1")).scalar() == 1
