"""The plan's Task 2.4 tests, as written (only the imports the plan left out are added)."""

import pytest

from witskit.security.auth import AuthManager, User
from witskit.security.rbac import Permission, require_permission  # noqa: F401  (imported by the plan)
from witskit.security.validation import SecureWITSFrame


class TestAuthentication:
    def setup_method(self):
        self.auth_manager = AuthManager("test-secret-key")

    def test_password_hashing(self):
        password = "secure_password_123"
        hashed = self.auth_manager.hash_password(password)

        assert hashed != password
        assert self.auth_manager.verify_password(password, hashed)
        assert not self.auth_manager.verify_password("wrong_password", hashed)

    def test_jwt_token_creation_verification(self):
        user = User(username="testuser", roles=["operator"])
        token = self.auth_manager.create_access_token(user)

        payload = self.auth_manager.verify_token(token)
        assert payload is not None
        assert payload["sub"] == "testuser"
        assert "operator" in payload["roles"]

    def test_invalid_token_rejection(self):
        invalid_token = "invalid.jwt.token"
        payload = self.auth_manager.verify_token(invalid_token)
        assert payload is None


class TestInputValidation:
    def test_valid_wits_frame_acceptance(self):
        valid_frame = """&&
01083650.40
011323.38
!!"""
        frame = SecureWITSFrame(raw_data=valid_frame)
        assert frame.raw_data == valid_frame

    def test_injection_attack_prevention(self):
        malicious_frame = """&&
0108'; DROP TABLE wits_data; --
011323.38
!!"""
        with pytest.raises(ValueError, match="Invalid data line format"):
            SecureWITSFrame(raw_data=malicious_frame)

    def test_oversized_frame_rejection(self):
        oversized_frame = "&&\n" + "0108123.45\n" * 1000 + "!!"
        with pytest.raises(ValueError, match="exceeds maximum size"):
            SecureWITSFrame(raw_data=oversized_frame)
