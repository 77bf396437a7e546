//! What the functions of the orders example share: the order and the rule
//! it must follow.

use serde::{Deserialize, Serialize};

/// An order, as the HTTP API accepts it and the queue and stream carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub product: String,
    pub quantity: u32,
}

impl Order {
    /// Checks the order against the largest quantity accepted.
    pub fn validate(&self, max_quantity: u32) -> Result<(), String> {
        if self.order_id.is_empty() || self.product.is_empty() {
            return Err("order_id and product must not be empty".into());
        }
        if self.quantity == 0 || self.quantity > max_quantity {
            return Err(format!(
                "quantity {} is outside 1-{max_quantity}",
                self.quantity
            ));
        }
        Ok(())
    }
}

/// `MAX_QUANTITY`, set by `env` in Cargo.toml; read once at start-up.
pub fn max_quantity() -> Result<u32, String> {
    let value = std::env::var("MAX_QUANTITY").map_err(|_| "MAX_QUANTITY is not set")?;
    value
        .parse()
        .map_err(|e| format!("MAX_QUANTITY=`{value}` is not a number: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_outside_the_limit_are_refused() {
        let order = |quantity| Order {
            order_id: "o-1".into(),
            product: "tea".into(),
            quantity,
        };
        assert!(order(1).validate(100).is_ok());
        assert!(order(100).validate(100).is_ok());
        assert_eq!(
            order(101).validate(100).unwrap_err(),
            "quantity 101 is outside 1-100"
        );
        assert!(order(0).validate(100).is_err());
    }
}
