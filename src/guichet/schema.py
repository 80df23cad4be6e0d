"""The whole schema: imports every model module, so ``Base.metadata`` knows every table
(``guichet.db.migrate.check``, new migrations, tests)."""

from guichet.accounts import models as _accounts  # noqa: F401
from guichet.db import models as _db  # noqa: F401
from guichet.db.base import Base
from guichet.federation import models as _federation  # noqa: F401
from guichet.habilitation import models as _habilitation  # noqa: F401
from guichet.habilitation import request_models as _habilitation_requests  # noqa: F401
from guichet.journal import models as _journal  # noqa: F401
from guichet.oauth import models as _oauth  # noqa: F401
from guichet.records import ficoba as _ficoba  # noqa: F401
from guichet.records import models as _records  # noqa: F401

metadata = Base.metadata
