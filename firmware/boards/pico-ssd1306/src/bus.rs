//! The display's I²C bus with every NACK reported. rp2040-hal (0.10, and 0.12 alike) reads the
//! controller's abort flag only while waiting for room in its 16-entry transmit FIFO, so a
//! shorter write to an address nobody answers returns `Ok`: the display's command writes (two to
//! four bytes) would all "succeed" with no display attached, and the board could never tell.
//! This wrapper checks the flag after each transaction.

use embedded_hal::i2c::{ErrorType, I2c, Operation};
use rp_pico::hal::i2c::Error;

use crate::wiring::{I2cBlock, Scl, Sda};

pub struct Bus(pub rp_pico::hal::I2C<I2cBlock, (Sda, Scl)>);

impl ErrorType for Bus {
    type Error = Error;
}

impl I2c for Bus {
    fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), Error> {
        // SAFETY: reads of status registers of the I²C block that `self.0` owns; reading
        // IC_CLR_TX_ABRT clears the abort flag and its reason, nothing else.
        let regs = unsafe { &*I2cBlock::ptr() };
        regs.ic_clr_tx_abrt().read();
        self.0.transaction(address, operations)?;
        if regs.ic_raw_intr_stat().read().tx_abrt().bit_is_set() {
            let reason = regs.ic_tx_abrt_source().read().bits();
            regs.ic_clr_tx_abrt().read();
            return Err(Error::Abort(reason));
        }
        Ok(())
    }
}
